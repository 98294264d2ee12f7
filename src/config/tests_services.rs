//! The service rules shared by the file, the CLI and the control socket: one address family per
//! service, ports that are ports, weights that fit, and no address the host owns taken twice.
//! Each check runs on the file and on the run-time entry points the daemon calls.

use super::*;

/// Two ports with one address family each on the lb side and both on the server side, one IPv4
/// service and one IPv6 service, each with a LIP of its own.
const BASE: &str = r#"[[port]]
name = "p0"
interface = "lb0"
addresses = ["10.10.1.1/24", "fd00:1::1/64"]

[[port]]
name = "p1"
interface = "lb1"
addresses = ["10.10.2.254/24", "fd00:2::fe/64"]

[[service]]
vip = "10.10.1.100:80"
local_addresses = ["10.10.2.1"]

[[service.backend]]
address = "10.10.2.11:80"

[[service]]
vip = "[fd00:1::100]:80"
local_addresses = ["fd00:2::1"]

[[service.backend]]
address = "[fd00:2::11]:80"
"#;

fn base() -> Config {
    parse(BASE, "sluice.toml").expect("BASE is good")
}

/// Parses BASE with `from` replaced by `to`, expecting one line holding every one of `parts`.
fn refused(from: &str, to: &str, parts: &[&str]) {
    assert!(BASE.contains(from), "{from:?} is not in BASE");
    let text = BASE.replacen(from, to, 1);
    let msg = match parse(&text, "sluice.toml") {
        Ok(_) => panic!("{to:?} should be refused"),
        Err(e) => e.to_string(),
    };
    assert!(!msg.contains('\n'), "not one line: {msg}");
    for part in parts {
        assert!(msg.contains(part), "{msg}\n  lacks {part:?}");
    }
}

#[test]
fn a_service_is_one_family_in_the_file() {
    // An IPv6 VIP with IPv4 LIPs and backends, and the reverse: both once left as corrupt packets.
    refused(
        r#"local_addresses = ["fd00:2::1"]"#,
        r#"local_addresses = ["10.10.2.2"]"#,
        &["IPv6", "one family"],
    );
    refused(
        r#"address = "[fd00:2::11]:80""#,
        r#"address = "10.10.2.12:80""#,
        &["IPv6 backend", "one family"],
    );
    refused(
        r#"local_addresses = ["10.10.2.1"]"#,
        r#"local_addresses = ["fd00:2::2"]"#,
        &["IPv4", "one family"],
    );
    refused(
        r#"address = "10.10.2.11:80""#,
        r#"address = "[fd00:2::12]:80""#,
        &["IPv4 backend", "one family"],
    );
}

#[test]
fn ports_and_own_addresses_in_the_file() {
    refused(r#"vip = "10.10.1.100:80""#, r#"vip = "10.10.1.100:0""#, &["port 0 is not a port"]);
    refused(r#"address = "10.10.2.11:80""#, r#"address = "10.10.2.11:0""#, &["port 0 is not a port"]);
    refused(
        r#"vip = "10.10.1.100:80""#,
        r#"vip = "10.10.1.1:80""#,
        &["port \"p0\"", "an address of its own"],
    );
    refused(r#"address = "10.10.2.11:80""#, r#"address = "10.10.2.254:80""#, &["one of this host's own"]);
    refused(r#"address = "10.10.2.11:80""#, r#"address = "10.10.1.100:80""#, &["one of this host's own"]);
    // A LIP equal to another service's VIP, and a VIP equal to another service's LIP.
    refused(r#"local_addresses = ["fd00:2::1"]"#, r#"local_addresses = ["fd00:1::100"]"#, &["service's VIP"]);
    let text = BASE.replacen(r#"vip = "[fd00:1::100]:80""#, r#"vip = "10.10.2.1:81""#, 1).replacen(
        r#"local_addresses = ["fd00:2::1"]"#,
        r#"local_addresses = ["10.10.2.3"]"#,
        1,
    );
    let msg = parse(&text, "sluice.toml").unwrap_err().to_string();
    assert!(msg.contains("local address (LIP)") || msg.contains("service's VIP"), "{msg}");
}

#[test]
fn weights_must_fit_sixteen_bits_in_the_file() {
    for w in ["70000", "4294967295", "-1"] {
        refused(
            r#"address = "10.10.2.11:80""#,
            &format!("address = \"10.10.2.11:80\"\nweight = {w}"),
            &["weight"],
        );
    }
}

#[test]
fn a_service_added_at_run_time_meets_the_same_rules() {
    let cfg = base();
    let add = |vip: &str, lips: &[&str]| {
        let lips: Vec<String> = lips.iter().map(ToString::to_string).collect();
        service_at_run_time(&cfg, vip, "tcp", "wlc", ("fullnat", None), &lips, 0, false, None)
    };
    assert!(add("10.10.1.101:80", &["10.10.2.5"]).is_ok());
    let refusals = [
        (add("[fd00:1::101]:80", &["10.10.2.5"]), "one family"),
        (add("10.10.1.101:80", &["fd00:2::5"]), "one family"),
        (add("10.10.1.101:0", &["10.10.2.5"]), "port 0"),
        (add("10.10.1.1:80", &["10.10.2.5"]), "an address of its own"),
        (add("10.10.2.1:80", &["10.10.2.5"]), "local address (LIP)"),
        (add("10.10.1.101:80", &["10.10.1.100"]), "service's VIP"),
        (add("10.10.1.101:80", &["10.10.2.254"]), "an address of its own"),
        (add("10.10.1.100:80", &["10.10.2.5"]), "exists"),
    ];
    for (result, why) in refusals {
        let msg = result.expect_err(why);
        assert!(msg.contains(why) && !msg.contains('\n'), "{msg}\n  lacks {why:?}");
    }
}

#[test]
fn a_backend_added_at_run_time_meets_the_same_rules() {
    let cfg = base();
    let v4 = &cfg.services[0];
    assert!(backend_at_run_time(&cfg, v4, "10.10.2.12:80", 1).is_ok());
    let refusals = [
        (backend_at_run_time(&cfg, v4, "[fd00:2::12]:80", 1), "one family"),
        (backend_at_run_time(&cfg, v4, "10.10.2.12:0", 1), "port 0"),
        (backend_at_run_time(&cfg, v4, "10.10.1.100:80", 1), "one of this host's own"),
        (backend_at_run_time(&cfg, v4, "10.10.2.254:80", 1), "one of this host's own"),
        (backend_at_run_time(&cfg, v4, "10.10.2.1:80", 1), "one of this host's own"),
        (backend_at_run_time(&cfg, v4, "10.10.2.12:80", 70000), "weight"),
        (backend_at_run_time(&cfg, v4, "10.10.2.12:80", u32::MAX), "weight"),
        (backend_at_run_time(&cfg, v4, "10.10.2.11:80", 1), "exists"),
    ];
    for (result, why) in refusals {
        let msg = result.expect_err(why);
        assert!(msg.contains(why) && !msg.contains('\n'), "{msg}\n  lacks {why:?}");
    }
    assert_eq!(weight_at_run_time(65535), Ok(65535));
    assert!(weight_at_run_time(70000).is_err());
    assert!(weight_at_run_time(u32::MAX).is_err());
}

#[test]
fn proxy_protocol_is_for_tcp_fullnat_services_without_the_syn_proxy() {
    let v2 = r#"local_addresses = ["10.10.2.1"]
proxy_protocol = "v2""#;
    let cfg = parse(&BASE.replacen(r#"local_addresses = ["10.10.2.1"]"#, v2, 1), "sluice.toml").unwrap();
    assert_eq!(cfg.services[0].proxy_protocol.as_deref(), Some("v2"));
    assert_eq!(cfg.services[1].proxy_protocol, None);
    refused(
        r#"vip = "10.10.1.100:80""#,
        "vip = \"10.10.1.100:53\"\nprotocol = \"udp\"\nproxy_protocol = \"v2\"",
        &[
            "service[0].proxy_protocol = \"v2\" on 10.10.1.100:53/udp: PROXY protocol is for TCP services only",
        ],
    );
    refused(
        r#"vip = "10.10.1.100:80""#,
        "vip = \"10.10.1.100:80\"\nsynproxy = true\nproxy_protocol = \"v2\"",
        &["service[0].proxy_protocol = \"v2\" on 10.10.1.100:80/tcp", "SYN proxy cannot be combined"],
    );
    refused(
        r#"vip = "[fd00:1::100]:80""#,
        "vip = \"[fd00:1::100]:80\"\nproxy_protocol = \"toa\"",
        &["service[1].proxy_protocol = \"toa\" on [fd00:1::100]:80/tcp: TOA carries an IPv4 address only"],
    );
    refused(
        r#"vip = "10.10.1.100:80""#,
        "vip = \"10.10.1.100:80\"\nproxy_protocol = \"v1\"",
        &["service[0].proxy_protocol", "\"v1\"", "\"v2\""],
    );
    // Another forwarding mode (the check `forward` will call).
    let msg = super::service::proxy_protocol_fits(
        "service[0].proxy_protocol = \"v2\"",
        "v2",
        "10.10.1.100:80".parse().unwrap(),
        Protocol::Tcp,
        false,
        "dr",
    )
    .unwrap_err();
    assert_eq!(
        msg,
        "service[0].proxy_protocol = \"v2\" on 10.10.1.100:80/tcp with forward = \"dr\": PROXY protocol needs forward = \"fullnat\" (only FullNAT rewrites the server-side stream)"
    );
    // The same rules at run time.
    let cfg = base();
    let lips = vec!["10.10.2.5".to_string()];
    let add = |vip: &str, proto: &str, synproxy: bool, pp: &str| {
        service_at_run_time(&cfg, vip, proto, "wlc", ("fullnat", None), &lips, 0, synproxy, Some(pp))
    };
    assert_eq!(add("10.10.1.101:80", "tcp", false, "v2").unwrap().proxy_protocol.as_deref(), Some("v2"));
    let refusals = [
        (
            add("10.10.1.101:53", "udp", false, "v2"),
            "--proxy-protocol v2 on 10.10.1.101:53/udp: PROXY protocol is for TCP services only",
        ),
        (add("10.10.1.101:80", "tcp", true, "v2"), "cannot be combined"),
        (add("10.10.1.101:80", "tcp", false, "v9"), "--proxy-protocol"),
        (add("10.10.1.101:80", "tcp", true, "toa"), "TOA and the SYN proxy cannot be combined"),
        (add("[fd00:1::101]:80", "tcp", false, "toa"), "TOA carries an IPv4 address only"),
    ];
    assert!(add("10.10.1.101:80", "tcp", false, "toa").is_ok());
    for (result, why) in refusals {
        let msg = result.expect_err(why);
        assert!(msg.contains(why) && !msg.contains('\n'), "{msg}\n  lacks {why:?}");
    }
}
