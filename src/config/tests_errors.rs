//! Bad configurations: each gives its one-line message naming the file, the line, the key,
//! the value and what was expected.

use super::*;

/// A good configuration the tests below break one key at a time.
pub(super) const BASE: &str = r#"[device]
workers = 2

[control]
metrics = "127.0.0.1:9100"

[[port]]
name = "p0"
interface = "lb0"
addresses = ["10.10.1.1/24"]

[[port]]
name = "p1"
interface = "lb1"
addresses = ["10.10.2.254/24", "fd00:2::fe/64"]

[[route]]
prefix = "0.0.0.0/0"
via = "10.10.1.254"

[[service]]
vip = "10.10.1.100:80"
local_addresses = ["10.10.2.1"]

[[service.backend]]
address = "10.10.2.11:80"
weight = 1

[timeouts]
tcp_time_wait = 7
"#;

/// BASE with `from` (which must be in it) replaced by `to`.
pub(super) fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} is not in BASE");
    BASE.replacen(from, to, 1)
}

/// The 1-based line of `text` holding `needle` (the first one).
fn line_with(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle:?} not in text")) + 1
}

/// Parses `text` expecting an error whose message is one line holding every one of `parts`.
pub(super) fn bad(text: &str, parts: &[&str]) -> ConfigError {
    let err = match parse(text, "sluice.toml") {
        Ok(cfg) => panic!("should fail ({parts:?}) but parsed: {cfg:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "not one line: {msg:?}");
    assert!(msg.starts_with("sluice.toml"), "does not name the file: {msg}");
    for part in parts {
        assert!(msg.contains(part), "{msg}\n  lacks {part:?}");
    }
    err
}

/// As [`bad`], and the message is on the line of `text` holding `at`.
pub(super) fn bad_at(text: &str, at: &str, parts: &[&str]) -> ConfigError {
    let err = bad(text, parts);
    let line = line_with(text, at);
    assert_eq!(err.line(), Some(line), "{err}: expected line {line}");
    assert!(err.to_string().starts_with(&format!("sluice.toml line {line}: ")), "{err}");
    err
}

#[test]
fn base_is_good() {
    assert!(parse(BASE, "sluice.toml").is_ok());
}

#[test]
fn unknown_key_at_top_level() {
    let text = format!("{BASE}[devcie]\nworkers = 1\n");
    let e = bad_at(
        &text,
        "[devcie]",
        &["unknown key \"devcie\" at the top level (expected one of: device, control, port"],
    );
    assert!(e.to_string().contains("did you mean \"device\"?"), "{e}");
    bad(
        &format!("{BASE}[[backend]]\naddress = \"10.10.2.12:80\"\n"),
        &["unknown key \"backend\"", "[[service.backend]]"],
    );
    bad(&format!("services = []\n{BASE}"), &["unknown key \"services\"", "did you mean \"service\"?"]);
}

#[test]
fn unknown_key_in_device() {
    let text = base_with("workers = 2", "workers = 2\ninterupts = true");
    bad_at(
        &text,
        "interupts",
        &[
            "unknown key \"interupts\" in device (expected one of: transport, socket, pci, workers, interrupts, ring_log2",
            "did you mean \"interrupts\"?",
        ],
    );
}

#[test]
fn unknown_key_in_a_backend() {
    let text = base_with("weight = 1", "wieght = 1");
    let e = bad_at(
        &text,
        "wieght",
        &["unknown key \"wieght\" in service[0].backend[0] (expected one of: address, weight"],
    );
    assert_eq!(e.path(), "service[0].backend[0]");
    let second = format!(
        "{}\n[[service.backend]]\naddress = \"10.10.2.12:80\"\nwieght = 2\n",
        BASE.split("[timeouts]").next().unwrap()
    );
    bad_at(&second, "wieght", &["in service[0].backend[1] "]);
    let inline = base_with("local_addresses", "health = { kind = \"tcp\", intervl_ms = 5 }\nlocal_addresses");
    bad_at(
        &inline,
        "intervl_ms",
        &["unknown key \"intervl_ms\" in service[0].health", "did you mean \"interval_ms\"?"],
    );
}

#[test]
fn values_of_the_wrong_type() {
    bad_at(
        &base_with("workers = 2", "workers = \"two\""),
        "workers",
        &["device.workers = \"two\": expected an integer"],
    );
    bad_at(
        &base_with("[[service]]", "[service]"),
        "[service]",
        &["service: expected a list of tables: write [[service]]"],
    );
    bad(
        &base_with("addresses = [\"10.10.1.1/24\"]", "addresses = \"10.10.1.1/24\""),
        &["port[0].addresses = \"10.10.1.1/24\": expected a list"],
    );
    bad(&format!("icmp = 3\n{BASE}"), &["icmp = 3: expected a table"]);
    bad(&format!("[icmp]\necho = \"yes\"\n{BASE}"), &["icmp.echo = \"yes\": expected true or false"]);
}

#[test]
fn bad_address() {
    let text = base_with("10.10.1.100:80", "10.10.1.300:80");
    let e = bad_at(
        &text,
        "10.10.1.300",
        &[
            "service[0].vip = \"10.10.1.300:80\": expected an address with a port, like \"10.10.1.100:80\" or \"[fd00::1]:80\"",
        ],
    );
    assert_eq!(e.path(), "service[0].vip");
    bad(
        &base_with("10.10.1.100:80", "10.10.1.100"),
        &["service[0].vip = \"10.10.1.100\"", "(the port is missing)"],
    );
    bad(&base_with("\"10.10.1.100:80\"", "\"fd00:1::100:80\""), &["takes its port after brackets"]);
    bad(&base_with("10.10.1.100:80", "10.10.1.100:0"), &["port 0"]);
    bad(
        &base_with("via = \"10.10.1.254\"", "via = \"10.10.1.2544\""),
        &["route[0].via = \"10.10.1.2544\": expected an IPv4 or IPv6 address"],
    );
    bad(
        &base_with("[\"10.10.2.1\"]", "[\"224.0.0.1\"]"),
        &["service[0].local_addresses[0] = \"224.0.0.1\"", "unicast"],
    );
}

#[test]
fn bad_cidr() {
    bad_at(
        &base_with("10.10.1.1/24", "10.10.1.1/33"),
        "10.10.1.1/33",
        &[
            "port[0].addresses[0] = \"10.10.1.1/33\": expected an address with a prefix length, like \"10.10.1.1/24\"",
            "from 0 to 32",
        ],
    );
    bad(
        &base_with("10.10.1.1/24", "10.10.1.1"),
        &["port[0].addresses[0] = \"10.10.1.1\"", "prefix length is missing"],
    );
    bad(&base_with("10.10.1.1/24", "10.10.1.0/24"), &["10.10.1.0 is the network's own address"]);
    bad(&base_with("10.10.1.1/24", "10.10.1.255/24"), &["broadcast"]);
    bad(
        &base_with("\"0.0.0.0/0\"", "\"10.0.0.1/8\""),
        &["route[0].prefix = \"10.0.0.1/8\"", "did you mean \"10.0.0.0/8\"?"],
    );
}

#[test]
fn bad_mac() {
    let text = base_with("interface = \"lb0\"", "interface = \"lb0\"\nmac = \"02:00:00:00:02\"");
    bad_at(
        &text,
        "mac =",
        &["port[0].mac = \"02:00:00:00:02\": expected a MAC address, like \"02:00:00:00:02:11\""],
    );
    let group = base_with("interface = \"lb0\"", "interface = \"lb0\"\nmac = \"01:00:5e:00:00:01\"");
    bad(&group, &["port[0].mac = \"01:00:5e:00:00:01\": expected a unicast MAC address"]);
    let neighbor = format!("{BASE}[[neighbor]]\naddress = \"10.10.2.11\"\nmac = \"zz:00:00:00:02:11\"\n");
    bad(&neighbor, &["neighbor[0].mac = \"zz:00:00:00:02:11\"", "\"zz\" is not two hex digits"]);
}

#[test]
fn a_vip_without_backends() {
    let text = format!("{BASE}[[service]]\nvip = \"10.10.1.100:443\"\nlocal_addresses = [\"10.10.2.1\"]\n");
    let e = bad(
        &text,
        &["service[1] (10.10.1.100:443/tcp) has no backends: add at least one [[service.backend]]"],
    );
    assert_eq!(e.path(), "service[1]");
    assert_eq!(e.line(), Some(line_with(&text, "10.10.1.100:443") - 1), "the line of its [[service]] header");
}

#[test]
fn duplicate_port_names_and_interfaces() {
    let text = base_with("name = \"p1\"", "name = \"p0\"");
    bad(&text, &["port[1].name = \"p0\": duplicate port name (port[0] is \"p0\")"]);
    let text = base_with("interface = \"lb1\"", "interface = \"lb0\"");
    bad(&text, &["port[1].interface = \"lb0\": duplicate interface (port[0] is attached to \"lb0\" too)"]);
    let text = base_with("\"10.10.2.254/24\"", "\"10.10.1.1/24\"");
    bad(&text, &["port[1].addresses[0] = \"10.10.1.1/24\": duplicate address"]);
    let macs = "[[port]]\nname = \"a\"\n[[port]]\nname = \"b\"\nmac = \"02:00:00:00:00:01\"\n";
    bad(macs, &["port[1].mac = \"02:00:00:00:00:01\": duplicate MAC (port[0] has it by default"]);
}

#[test]
fn duplicate_services() {
    let svc = "[[service]]\nvip = \"10.10.1.100:80\"\nprotocol = \"PROTO\"\nlocal_addresses = [\"10.10.2.1\"]\n\
               [[service.backend]]\naddress = \"10.10.2.12:80\"\n";
    let text = format!("{BASE}{}{}", svc.replace("PROTO", "udp"), svc.replace("PROTO", "tcp"));
    let e = bad(&text, &["service[2]: duplicate service 10.10.1.100:80/tcp (also service[0])"]);
    assert_eq!(e.path(), "service[2]");
    let six = "[[service]]\nvip = \"[fd00:1::100]:80\"\nlocal_addresses = [\"fd00:2::1\"]\n\
               [[service.backend]]\naddress = \"[fd00:2::11]:80\"\n";
    bad(
        &format!("{BASE}{six}{six}"),
        &["service[2]: duplicate service [fd00:1::100]:80/tcp (also service[1])"],
    );
    let backends =
        BASE.replace("weight = 1\n", "weight = 1\n[[service.backend]]\naddress = \"10.10.2.11:80\"\n");
    bad(
        &backends,
        &[
            "service[0].backend[1].address = \"10.10.2.11:80\": duplicate backend (also service[0].backend[0])",
        ],
    );
}

#[test]
fn bad_workers() {
    for (value, expected) in [
        ("3", "expected a power of two: 1, 2, 4, 8 or 16"),
        ("0", "expected an integer from 1 to 16"),
        ("32", "expected an integer from 1 to 16"),
    ] {
        let text = base_with("workers = 2", &format!("workers = {value}"));
        bad_at(&text, "workers", &[&format!("device.workers = {value}: {expected}")]);
    }
    bad(
        &base_with("workers = 2", "workers = 2\nring_log2 = 20"),
        &["device.ring_log2 = 20: expected an integer from 4 to 14"],
    );
}

#[test]
fn bad_scheduler_and_protocol() {
    let text = base_with("local_addresses", "scheduler = \"wwr\"\nlocal_addresses");
    bad_at(
        &text,
        "wwr",
        &["service[0].scheduler = \"wwr\": expected one of \"rr\", \"wrr\", \"lc\", \"wlc\", \"sh\", \"mh\""],
    );
    let text = base_with("local_addresses", "protocol = \"sctp\"\nlocal_addresses");
    bad_at(&text, "sctp", &["service[0].protocol = \"sctp\": expected one of \"tcp\", \"udp\""]);
    bad(
        &base_with("workers = 2", "transport = \"pci\""),
        &["device.transport = \"pci\": expected one of \"sim\", \"vfio-user\", \"vfio\""],
    );
}

#[test]
fn transport_without_its_socket_or_pci() {
    let text = base_with("workers = 2", "transport = \"vfio-user\"");
    let e = bad_at(
        &text,
        "[device]",
        &["device: missing key \"socket\"", "transport = \"vfio-user\" needs the server's socket"],
    );
    assert_eq!(e.path(), "device");
    bad(
        &base_with("workers = 2", "transport = \"vfio\""),
        &["device: missing key \"pci\"", "like pci = \"0000:03:00.0\""],
    );
}

#[test]
fn bad_pci_address() {
    for pci in [
        "03:00.0",
        "0000:03:00",
        "0000:03:20.0",
        "0000:03:00.8",
        "0000:3:00.0",
        "0000:03:00.0 ",
        "00000:03:00.0",
    ] {
        let text = base_with("workers = 2", &format!("transport = \"vfio\"\npci = \"{pci}\""));
        bad_at(
            &text,
            "pci =",
            &[&format!("device.pci = \"{pci}\": expected a PCI address DDDD:BB:DD.F, like \"0000:03:00.0\"")],
        );
    }
}

#[test]
fn backend_family_mismatch() {
    let text = base_with("\"10.10.2.11:80\"", "\"[fd00:2::11]:80\"");
    let e = bad_at(
        &text,
        "fd00:2::11",
        &[
            "service[0].backend[0].address = \"[fd00:2::11]:80\": expected an IPv4 backend like the VIP",
            "one family",
        ],
    );
    assert_eq!(e.path(), "service[0].backend[0].address");
    bad(
        &base_with("local_addresses = [\"10.10.2.1\"]", "local_addresses = []"),
        &["service[0].local_addresses: empty list"],
    );
    bad(
        &base_with("local_addresses = [\"10.10.2.1\"]\n", ""),
        &["service[0]: missing key \"local_addresses\""],
    );
}

#[test]
fn lips_vips_and_port_addresses_are_distinct() {
    bad(
        &base_with("[\"10.10.2.1\"]", "[\"10.10.1.100\"]"),
        &["service[0].local_addresses[0] = \"10.10.1.100\"", "it is a service's VIP"],
    );
    bad(&base_with("[\"10.10.2.1\"]", "[\"10.10.2.254\"]"), &["it is port \"p1\"'s"]);
    bad(
        &base_with("10.10.1.100:80", "10.10.1.1:80"),
        &["service[0].vip = \"10.10.1.1:80\"", "port \"p0\"'s"],
    );
    bad(
        &base_with("10.10.2.11:80", "10.10.2.1:80"),
        &["service[0].backend[0].address = \"10.10.2.1:80\"", "this host's own"],
    );
}

#[test]
fn quarantine_too_short() {
    let text = base_with("tcp_time_wait = 7", "tcp_time_wait = 7\nquarantine = 30");
    bad_at(&text, "quarantine", &["timeouts.quarantine = 30: expected at least 60 seconds", "TIME_WAIT"]);
    let text = base_with("tcp_time_wait = 7", "tcp_time_wait = 60\nquarantine = 100");
    bad(
        &text,
        &["timeouts.quarantine = 100: expected at least 120 seconds", "2 × timeouts.tcp_time_wait = 120"],
    );
    bad(
        &base_with("tcp_time_wait = 7", "tcp_time_wait = 0"),
        &["timeouts.tcp_time_wait = 0: expected an integer from 1 to"],
    );
}

#[test]
fn metrics_not_on_loopback() {
    for addr in ["0.0.0.0:9100", "10.10.1.1:9100", "127.0.0.1", "[::]:9100"] {
        let text = base_with("127.0.0.1:9100", addr);
        bad_at(
            &text,
            "metrics",
            &[
                &format!("control.metrics = \"{addr}\": expected a loopback address with a port"),
                "loopback only",
            ],
        );
    }
    assert_eq!(
        parse(&base_with("127.0.0.1:9100", "[::1]:9100"), "x").unwrap().control.metrics,
        "[::1]:9100".parse().unwrap()
    );
}

#[test]
fn toml_syntax_errors_give_the_line() {
    let e = bad("[device]\nworkers = 2\n[port\nname = \"p0\"\n", &["sluice.toml line 3: invalid TOML: "]);
    assert_eq!(e.line(), Some(3));
    let e = bad(
        &base_with("workers = 2", "workers = 2\nworkers = 4"),
        &["invalid TOML: duplicate key \"workers\""],
    );
    assert_eq!(e.line(), Some(3));
    bad("a = \"unterminated\nb = 1\n", &["sluice.toml line 1: invalid TOML: invalid basic string"]);
    bad("[[port]]\nname = \"p0\"\naddresses = [\"10.10.1.1/24\"\n", &["sluice.toml line 3: invalid TOML"]);
}

#[test]
fn a_missing_file() {
    let path = Path::new("/nonexistent/sluice-test/sluice.toml");
    let e = load(path).unwrap_err();
    assert_eq!(e.line(), None);
    let msg = e.to_string();
    assert!(msg.starts_with("/nonexistent/sluice-test/sluice.toml: no such file"), "{msg}");
    assert!(!msg.contains('\n'));
    assert_eq!(e.exit_code(), std::process::ExitCode::from(2));
}

#[test]
fn no_ports_and_too_many() {
    bad("", &["sluice.toml: no [[port]]: add at least one"]);
    let nine = (0..9).map(|i| format!("[[port]]\nname = \"p{i}\"\n")).collect::<Vec<_>>().concat();
    bad(&nine, &["port[8]: too many ports: a NIC has at most 8"]);
}

#[test]
fn routes_and_neighbors_that_do_not_resolve() {
    bad(
        &base_with("via = \"10.10.1.254\"", "via = \"10.9.9.9\""),
        &["route[0].via = \"10.9.9.9\"", "no port has an address on it"],
    );
    bad(
        &base_with("via = \"10.10.1.254\"", "via = \"fd00:2::1\""),
        &["route[0].via = \"fd00:2::1\": expected an IPv4 gateway"],
    );
    bad(
        &base_with("via = \"10.10.1.254\"", "via = \"10.10.1.254\"\nport = \"p9\""),
        &["route[0].port = \"p9\": expected the name of a [[port]]: \"p0\", \"p1\""],
    );
    bad(&base_with("via = \"10.10.1.254\"", "via = \"10.10.1.1\""), &["this host's own"]);
    let twice = "[[neighbor]]\naddress = \"10.10.2.11\"\nmac = \"02:00:00:00:02:11\"\n";
    bad(
        &format!("{BASE}{twice}{twice}"),
        &["neighbor[1].address = \"10.10.2.11\": duplicate neighbor (also neighbor[0])"],
    );
    bad(&format!("{BASE}[[neighbor]]\naddress = \"10.10.2.11\"\n"), &["neighbor[0]: missing key \"mac\""]);
}

#[test]
fn backends_that_cannot_be_used() {
    let no_route = base_with("[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.10.1.254\"\n", "");
    let text = no_route.replace("10.10.2.11:80", "192.0.2.11:80");
    bad(&text, &["service[0].backend[0].address = \"192.0.2.11:80\": expected a reachable address"]);
    bad(
        &base_with("weight = 1", "weight = 70000"),
        &["service[0].backend[0].weight = 70000: expected an integer from 0 to 65535 (0 drains)"],
    );
    bad(&base_with("weight = 1", "weight = -1"), &["weight = -1"]);
}

#[test]
fn bad_health_checks() {
    let with = |h: &str| base_with("local_addresses", &format!("health = {h}\nlocal_addresses"));
    bad(&with("{ interval_ms = 100 }"), &["service[0].health: missing key \"kind\""]);
    bad(
        &with("{ kind = \"icmp\" }"),
        &["service[0].health.kind = \"icmp\": expected one of \"tcp\", \"http\""],
    );
    bad(
        &with("{ kind = \"tcp\", interval_ms = 500, timeout_ms = 900 }"),
        &["service[0].health.timeout_ms = 900: expected at most interval_ms (500)"],
    );
    bad(&with("{ kind = \"tcp\", path = \"/\" }"), &["service[0].health.path: only for kind = \"http\""]);
    bad(
        &with("{ kind = \"http\", path = \"healthz\" }"),
        &["service[0].health.path = \"healthz\": expected a path starting with \"/\""],
    );
    bad(
        &with("{ kind = \"http\", expect = 2000 }"),
        &["service[0].health.expect = 2000: expected an integer from 100 to 599"],
    );
    bad(
        &with("{ kind = \"tcp\", rise = 0 }"),
        &["service[0].health.rise = 0: expected an integer from 1 to 1000"],
    );
}

#[test]
fn bad_limits_offload_and_host() {
    let with = |section: &str| format!("{BASE}{section}");
    bad(
        &with("[limits]\nlport_min = 2000\nlport_max = 2000\n"),
        &["limits.lport_max = 2000: expected a port above limits.lport_min (2000)"],
    );
    let four =
        format!("{}[limits]\nlport_min = 2000\nlport_max = 2001\n", base_with("workers = 2", "workers = 4"));
    bad(&four, &["limits.lport_max = 2001: expected a range of at least device.workers (4) ports"]);
    bad(
        &with("[limits]\nhalf_open_per_worker = 0\n"),
        &["limits.half_open_per_worker = 0: expected an integer from 1"],
    );
    bad(
        &with("[offload]\ntcp_after = \"syn\"\n"),
        &["offload.tcp_after = \"syn\": expected one of \"handshake\", \"first_packet\""],
    );
    bad(
        &with("[offload]\nudp_after = \"handshake\"\n"),
        &["offload.udp_after = \"handshake\": expected one of \"reply\", \"first_packet\""],
    );
    bad(
        &with("[host]\ntap_prefix = \"sluice-tap-\"\n").replace("\"p1\"", "\"server\""),
        &["port[1].name = \"server\": expected a shorter name: its TAP interface \"sluice-tap-server\""],
    );
    assert!(
        parse(
            &with("[host]\ntap = false\ntap_prefix = \"sluice-tap-\"\n").replace("\"p1\"", "\"server\""),
            "x"
        )
        .is_ok(),
        "no TAP, no limit"
    );
    bad(&with("[host]\ntap_prefix = \"a/b\"\n"), &["host.tap_prefix = \"a/b\""]);
}

#[test]
fn bad_names() {
    bad(
        &base_with("name = \"p0\"", "name = \"\""),
        &["port[0].name = \"\": expected a name of 1 to 15 characters"],
    );
    bad(&base_with("name = \"p0\"", "name = \"p 0\""), &["port[0].name = \"p 0\""]);
    bad(
        &base_with("interface = \"lb0\"", "interface = \"../lb0\""),
        &["port[0].interface = \"../lb0\": expected a Linux interface name"],
    );
    bad(&base_with("name = \"p0\"\n", ""), &["port[0]: missing key \"name\""]);
    bad(
        &base_with(
            "addresses = [\"10.10.2.254/24\", \"fd00:2::fe/64\"]",
            "addresses = [\"fd00:2::fe/64\"]\nmtu = 1000",
        ),
        &["port[1].mtu = 1000: expected an integer from 1280 to 9000 (IPv6 needs 1280 at least)"],
    );
}

#[test]
fn bad_port_kinds_and_queues() {
    let e = bad(
        &base_with("interface = \"lb1\"", "interface = \"lb1\"\nkind = \"xdp\""),
        &["port[1].kind = \"xdp\": expected \"auto\", \"af_xdp\" or \"af_packet\""],
    );
    assert_eq!(e.line(), Some(line_with(BASE, "interface = \"lb1\"") + 1));
    bad(
        &base_with("interface = \"lb0\"", "interface = \"lb0\"\nqueue = -1"),
        &["port[0].queue = -1: expected an integer from 0 to 1023"],
    );
    let cfg = parse(
        &base_with("interface = \"lb0\"", "interface = \"lb0\"\nkind = \"af_packet\"\nqueue = 3"),
        "sluice.toml",
    )
    .unwrap();
    assert_eq!((cfg.ports[0].kind, cfg.ports[0].queue), (PortKind::AfPacket, 3));
    assert_eq!((cfg.ports[1].kind, cfg.ports[1].queue), (PortKind::Auto, 0), "the defaults");
}

#[test]
fn keys_with_odd_names_stay_on_one_line() {
    let e = bad(&format!("\"a\\nb\" = 1\n{BASE}"), &["unknown key \"a\\nb\" at the top level"]);
    assert_eq!(e.line(), Some(1));
    let e = ConfigError::new("odd\nname.toml", Some(1), error::Problem::raw("", "x".into()));
    assert_eq!(e.to_string(), "odd\\nname.toml line 1: x");
}

#[test]
fn probes_are_checked() {
    let p = |body: &str| format!("{BASE}[[probe]]\n{body}\n");
    bad(&p("name = \"x\""), &["probe[0]", "target"]);
    bad(&p("target = \"10.99.0.100\""), &["probe[0].target"]);
    bad(&p("target = \"10.99.0.100:80\"\ncheck = { kind = \"udp\" }"), &["probe[0].check.kind"]);
    bad(
        &p("target = \"10.99.0.100:80\"\ncheck = { kind = \"tcp\", path = \"/\" }"),
        &["probe[0].check.path", "only for kind = \"http\""],
    );
    let two =
        format!("{BASE}[[probe]]\ntarget = \"10.99.0.100:80\"\n[[probe]]\ntarget = \"10.99.0.100:80\"\n");
    bad(&two, &["probe[1].name", "duplicate probe name (also probe[0])"]);
    bad(&p("target = \"10.99.0.100:80\"\nfrequency = 3"), &["unknown key \"frequency\""]);
    let cfg = parse(&p("target = \"10.99.0.100:80\""), "sluice.toml").unwrap();
    let probe = &cfg.probes[0];
    assert_eq!((probe.name.as_str(), probe.target.to_string()), ("10.99.0.100:80", "10.99.0.100:80".into()));
    assert_eq!(probe.check.kind, HealthKind::Tcp, "a TCP connect by default");
}

#[test]
fn punt_shares_name_punt_reasons_and_percentages() {
    let with =
        |v: &str| base_with("tcp_time_wait = 7", &format!("tcp_time_wait = 7\n[limits]\npunt_share = {v}"));
    let cfg = parse(&with("{ miss = 75, tcp_fin = 10 }"), "sluice.toml").unwrap();
    assert_eq!(cfg.limits.punt_share.get("miss"), Some(&75));
    assert_eq!(cfg.limits.punt_share.get("tcp_fin"), Some(&10));
    bad(&with("{ syn_flood = 50 }"), &["limits.punt_share.syn_flood", "not a punt reason", "miss"]);
    bad(&with("{ miss = 0 }"), &["limits.punt_share.miss", "1 to 100"]);
    bad(&with("{ miss = 101 }"), &["limits.punt_share.miss"]);
}
