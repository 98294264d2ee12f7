//! `forward` and `nat_gateway`: what each forwarding mode needs of the network, checked in the
//! file and at run time, each refusal one line naming the file, the line, the key and the
//! service.

use super::*;
use crate::config::service::{backend_at_run_time, service_at_run_time};

/// Two ports, a default route beyond p0, and one service whose `forward`, extra keys and
/// backend the tests fill in.
fn file(route: bool, service: &str, backend: &str) -> String {
    let route = if route { "[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.10.1.254\"\n\n" } else { "" };
    format!(
        r#"[[port]]
name = "p0"
addresses = ["10.10.1.1/24"]

[[port]]
name = "p1"
addresses = ["10.10.2.254/24", "fd00:2::fe/64"]

{route}[[service]]
vip = "10.10.1.100:80"
{service}

[[service.backend]]
address = "{backend}"
"#
    )
}

fn good(text: &str) -> Config {
    parse(text, "sluice.toml").unwrap_or_else(|e| panic!("should parse: {e}\n{text}"))
}

/// The error of `text`: one line, on the line holding `at`, containing every one of `parts`.
fn bad_at(text: &str, at: &str, parts: &[&str]) {
    let Err(e) = parse(text, "sluice.toml") else { panic!("should fail ({parts:?}):\n{text}") };
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "not one line: {msg:?}");
    let line = text.lines().position(|l| l.contains(at)).unwrap() + 1;
    assert!(msg.starts_with(&format!("sluice.toml line {line}: ")), "{msg}: expected line {line}");
    for p in parts {
        assert!(msg.contains(p), "{msg}\n  lacks {p:?}");
    }
}

#[test]
fn each_mode_with_what_it_needs_parses() {
    let cfg = good(&file(true, "local_addresses = [\"10.10.2.1\"]", "10.10.2.11:8080"));
    assert_eq!(cfg.services[0].forward, Forward::FullNat, "fullnat by default");
    let cfg = good(&file(true, "forward = \"dr\"", "10.10.2.11:80"));
    assert_eq!((cfg.services[0].forward, cfg.services[0].local_addresses.len()), (Forward::Dr, 0));
    let cfg = good(&file(true, "forward = \"tun\"\nlocal_addresses = [\"10.10.2.1\"]", "10.20.0.5:80"));
    assert_eq!(cfg.services[0].forward, Forward::Tun);
    let cfg = good(&file(true, "forward = \"nat\"\nnat_gateway = \"10.10.2.254\"", "10.10.2.11:8080"));
    assert_eq!(cfg.services[0].nat_gateway, Some("10.10.2.254".parse().unwrap()));
}

#[test]
fn an_unknown_mode_lists_the_four() {
    let text = file(true, "forward = \"masq\"", "10.10.2.11:80");
    bad_at(&text, "forward", &["service[0].forward", "\"masq\"", "fullnat", "nat", "dr", "tun"]);
}

#[test]
fn dr_needs_a_server_on_a_connected_network_on_the_vips_port() {
    let text = file(true, "forward = \"dr\"", "10.20.0.5:80");
    bad_at(
        &text,
        "10.20.0.5",
        &["service[0].backend[0].address", "10.10.1.100:80/tcp", "dr", "directly connected network"],
    );
    let text = file(true, "forward = \"dr\"", "10.10.2.11:8080");
    bad_at(&text, "10.10.2.11", &["10.10.1.100:80/tcp", "the VIP's port 80"]);
}

#[test]
fn tun_needs_a_route_to_the_server_and_a_tunnel_source() {
    let text = file(false, "forward = \"tun\"\nlocal_addresses = [\"10.10.2.1\"]", "10.20.0.5:80");
    bad_at(&text, "10.20.0.5", &["10.10.1.100:80/tcp", "tun", "the tunnel can reach", "[[route]]"]);
    let text = file(true, "forward = \"tun\"", "10.20.0.5:80");
    bad_at(&text, "[[service]]", &["service[0]", "local_addresses"]);
    let text = file(true, "forward = \"tun\"\nlocal_addresses = [\"10.10.2.1\"]", "10.20.0.5:81");
    bad_at(&text, "10.20.0.5", &["the VIP's port 80"]);
}

#[test]
fn nat_needs_the_balancer_as_the_servers_gateway() {
    let text = file(true, "forward = \"nat\"", "10.10.2.11:80");
    bad_at(&text, "[[service]]", &["service[0]", "nat_gateway", "replies through the balancer"]);
    let text = file(true, "forward = \"nat\"\nnat_gateway = \"10.10.2.9\"", "10.10.2.11:80");
    bad_at(&text, "nat_gateway", &["service[0].nat_gateway", "\"10.10.2.9\"", "a port's own addresses"]);
    // A server beyond a route cannot have the balancer's port address as its gateway.
    let text = file(true, "forward = \"nat\"\nnat_gateway = \"10.10.2.254\"", "10.20.0.5:80");
    bad_at(&text, "10.20.0.5", &["10.10.1.100:80/tcp", "nat", "network of nat_gateway 10.10.2.254"]);
}

#[test]
fn keys_a_mode_has_no_use_for_are_refused() {
    let text =
        file(true, "nat_gateway = \"10.10.2.254\"\nlocal_addresses = [\"10.10.2.1\"]", "10.10.2.11:80");
    bad_at(&text, "nat_gateway", &["service[0].nat_gateway", "only forward = \"nat\""]);
    let text = file(true, "forward = \"dr\"\nlocal_addresses = [\"10.10.2.1\"]", "10.10.2.11:80");
    bad_at(
        &text,
        "local_addresses",
        &["service[0].local_addresses", "forward = \"dr\" uses no local address"],
    );
    let text = file(true, "forward = \"dr\"\nsynproxy = true", "10.10.2.11:80");
    bad_at(&text, "synproxy", &["service[0].synproxy", "needs forward = \"fullnat\""]);
}

#[test]
fn services_added_at_run_time_meet_the_same_rules() {
    let cfg = good(&file(true, "local_addresses = [\"10.10.2.1\"]", "10.10.2.11:80"));
    let dr =
        service_at_run_time(&cfg, "10.10.1.101:80", "tcp", "wlc", ("dr", None), &[], 0, false, None).unwrap();
    assert_eq!(dr.forward, Forward::Dr);
    assert!(backend_at_run_time(&cfg, &dr, "10.10.2.12:80", 1).is_ok());
    let e = backend_at_run_time(&cfg, &dr, "10.20.0.5:80", 1).unwrap_err();
    assert!(e.contains("directly connected") && e.contains("10.10.1.101:80/tcp"), "{e}");
    let e = service_at_run_time(&cfg, "10.10.1.102:80", "tcp", "wlc", ("nat", None), &[], 0, false, None)
        .unwrap_err();
    assert!(e.contains("nat_gateway"), "{e}");
    let nat = service_at_run_time(
        &cfg,
        "10.10.1.102:80",
        "tcp",
        "wlc",
        ("nat", Some("10.10.2.254")),
        &[],
        0,
        false,
        None,
    )
    .unwrap();
    assert!(backend_at_run_time(&cfg, &nat, "10.10.2.13:8080", 1).is_ok());
    let e = service_at_run_time(&cfg, "10.10.1.103:80", "tcp", "wlc", ("direct", None), &[], 0, false, None)
        .unwrap_err();
    assert!(e.contains("forward") && e.contains("\"direct\""), "{e}");
    let e = service_at_run_time(&cfg, "10.10.1.104:80", "tcp", "wlc", ("tun", None), &[], 0, false, None)
        .unwrap_err();
    assert!(e.contains("local_addresses"), "{e}");
}
