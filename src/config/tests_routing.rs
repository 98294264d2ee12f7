//! `[routing]`, `[[routing.peer]]` and `priority`: defaults, and one clear line for each
//! mistake.

use super::*;

const BASE: &str = r#"[[port]]
name = "p0"
addresses = ["10.10.3.1/24"]

[[port]]
name = "p1"
addresses = ["10.10.2.251/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "10.10.3.254"

[[service]]
vip = "10.99.0.100:80"
local_addresses = ["10.10.2.1"]
priority = 1

[[service.backend]]
address = "10.10.2.11:80"

[[service]]
vip = "10.99.0.100:53"
protocol = "udp"
local_addresses = ["10.10.2.1"]

[[service.backend]]
address = "10.10.2.11:53"

[routing]
bird_socket = "/run/bird/bird.ctl"
asn = 65001

[[routing.peer]]
address = "10.10.3.254"
asn = 65000
"#;

fn bad(text: &str, parts: &[&str]) {
    let msg = match parse(text, "sluice.toml") {
        Ok(c) => panic!("should fail ({parts:?}) but parsed: {:?}", c.routing),
        Err(e) => e.to_string(),
    };
    assert!(!msg.contains('\n') && msg.starts_with("sluice.toml"), "{msg}");
    for p in parts {
        assert!(msg.contains(p), "{msg}\n  lacks {p:?}");
    }
}

#[test]
fn routing_defaults() {
    let c = parse(BASE, "t").unwrap();
    let r = c.routing.unwrap();
    assert_eq!(r.bird_socket, PathBuf::from("/run/bird/bird.ctl"));
    assert_eq!(r.include_file, PathBuf::from("/run/sluice/bird/sluice.conf"));
    assert_eq!((r.asn, r.bfd, r.bfd_interval_ms, r.bfd_multiplier, r.hold_time_s), (65001, true, 100, 3, 3));
    assert!(r.announce_lips);
    assert_eq!(
        r.peers,
        vec![Peer { address: "10.10.3.254".parse().unwrap(), asn: 65000, port: 179, bfd: true }]
    );
    assert_eq!(r.priority(&"10.99.0.100".parse().unwrap()), 1);
    assert_eq!(r.priority(&"10.99.0.7".parse().unwrap()), 0);
    let no_bfd = parse(&BASE.replace("[routing]", "[routing]\nbfd = false"), "t").unwrap();
    assert!(!no_bfd.routing.unwrap().peers[0].bfd);
    // No [routing]: nothing announced.
    let plain = BASE.split("[routing]").next().unwrap().replace("priority = 1\n", "");
    assert!(parse(&plain, "t").unwrap().routing.is_none());
}

#[test]
fn bad_routing_is_one_line() {
    bad(
        &BASE.replace("bird_socket = \"/run/bird/bird.ctl\"\n", ""),
        &["line 29", "routing: missing key \"bird_socket\""],
    );
    bad(
        &BASE.replace("/run/bird/bird.ctl", "bird.ctl"),
        &["routing.bird_socket = \"bird.ctl\"", "absolute path"],
    );
    bad(&BASE.replace("asn = 65001", "asn = 0"), &["routing.asn = 0", "AS number"]);
    bad(&BASE.replace("asn = 65000", "asn = 4294967296"), &["routing.peer[0].asn = 4294967296"]);
    bad(
        &BASE.replace("address = \"10.10.3.254\"", "address = \"10.10.9.254\""),
        &["routing.peer[0].address = \"10.10.9.254\"", "directly connected router (a route is not enough)"],
    );
    bad(
        &BASE.replace("address = \"10.10.3.254\"", "address = \"10.10.3.1\""),
        &["this host's own (port[0] \"p0\")"],
    );
    bad(
        &BASE.replace("address = \"10.10.3.254\"", "address = \"banana\""),
        &["routing.peer[0].address = \"banana\""],
    );
    bad(
        &format!("{BASE}\n[[routing.peer]]\naddress = \"10.10.3.254\"\nasn = 65000\n"),
        &["duplicate peer (also routing.peer[0])"],
    );
    bad(&BASE.replace("asn = 65000\n", "asn = 65000\nmed = 3\n"), &["med"]);
    bad(
        &BASE.replace("protocol = \"udp\"", "protocol = \"udp\"\npriority = 2"),
        &[
            "line 24",
            "service[1].priority = 2: duplicate priority for VIP 10.99.0.100: service[0].priority = 1",
        ],
    );
    bad(&BASE.replace("priority = 1", "priority = 10"), &["service[0].priority = 10", "0 to 9"]);
    let no_routing = BASE.split("[routing]").next().unwrap().to_string();
    bad(&no_routing, &["service[0].priority: a priority needs a [routing] table"]);
    let no_peer = BASE.split("[[routing.peer]]").next().unwrap().to_string();
    bad(&no_peer, &["no [[routing.peer]]"]);
}

#[test]
fn an_unreachable_bird_socket_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.ctl");
    let text = BASE.replace("/run/bird/bird.ctl", &sock.display().to_string());
    let cfg = parse(&text, "sluice.toml").unwrap();
    let msg = check_paths(&cfg).unwrap_err().to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.starts_with("sluice.toml: routing.bird_socket = ") && msg.contains("cannot reach BIRD"),
        "{msg}"
    );
}

#[test]
fn the_shipped_cluster_example_parses() {
    let text = include_str!("../../packaging/cluster/sluice-node.toml");
    let r = parse(text, "sluice-node.toml").unwrap().routing.unwrap();
    assert_eq!((r.asn, r.peers.len(), r.bfd), (65001, 1, true));
}
