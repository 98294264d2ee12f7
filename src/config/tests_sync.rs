//! `[sync]` and `[[sync.peer]]`: defaults, and one clear line for each mistake.

use super::*;

const BASE: &str = r#"[[port]]
name = "p0"
addresses = ["10.10.3.1/24"]

[[port]]
name = "p1"
addresses = ["10.10.2.251/24"]

[[service]]
vip = "10.99.0.100:80"
local_addresses = ["10.10.2.1"]

[[service.backend]]
address = "10.10.2.11:80"
"#;

fn with(sync: &str) -> String {
    format!("{BASE}\n{sync}")
}

fn bad(sync: &str, parts: &[&str]) {
    let msg = match parse(&with(sync), "sluice.toml") {
        Ok(c) => panic!("should fail ({parts:?}) but parsed: {:?}", c.sync),
        Err(e) => e.to_string(),
    };
    assert!(!msg.contains('\n') && msg.starts_with("sluice.toml"), "{msg}");
    for p in parts {
        assert!(msg.contains(p), "{msg}\n  lacks {p:?}");
    }
}

#[test]
fn no_sync_table_is_no_sync() {
    assert_eq!(parse(BASE, "t").unwrap().sync, None);
}

#[test]
fn sync_defaults_and_both_ways_of_naming_peers() {
    let c = parse(
        &with(
            "[sync]\npeers = [\"10.10.2.253\"]\n\n[[sync.peer]]\naddress = \"10.10.2.252\"\nlips = [\"10.10.2.2\", \"fd00:2::2\"]\n",
        ),
        "t",
    )
    .unwrap();
    let s = c.sync.unwrap();
    assert_eq!((s.port, s.queue, s.batch_ms, s.node_id), (8848, 65536, 10, None));
    let addrs: Vec<String> = s.peers.iter().map(|p| p.address.to_string()).collect();
    assert_eq!(addrs, ["10.10.2.253", "10.10.2.252"]);
    assert!(s.peers[0].lips.is_empty());
    assert_eq!(s.peer_lips(), ["10.10.2.2".parse::<IpAddr>().unwrap(), "fd00:2::2".parse().unwrap()]);
    let c = parse(
        &with("[sync]\nport = 9000\nqueue = 10\nbatch_ms = 1\nnode_id = 7\npeers = [\"10.10.2.252\"]\n"),
        "t",
    )
    .unwrap();
    let s = c.sync.unwrap();
    assert_eq!((s.port, s.queue, s.batch_ms, s.node_id), (9000, 10, 1, Some(7)));
}

#[test]
fn bad_sync_settings_are_one_line_each() {
    bad("[sync]\n", &["sync", "no peer"]);
    bad("[sync]\nport = 0\npeers = [\"10.10.2.252\"]\n", &["sync.port = 0", "1 to 65535"]);
    bad("[sync]\nport = 70000\npeers = [\"10.10.2.252\"]\n", &["sync.port"]);
    bad("[sync]\nqueue = 0\npeers = [\"10.10.2.252\"]\n", &["sync.queue = 0"]);
    bad("[sync]\nbatch_ms = 5000\npeers = [\"10.10.2.252\"]\n", &["sync.batch_ms = 5000"]);
    bad("[sync]\nnode_id = 0\npeers = [\"10.10.2.252\"]\n", &["sync.node_id = 0"]);
    bad("[sync]\npeers = [\"10.10.2\"]\n", &["sync.peers[0]", "10.10.2"]);
    bad("[sync]\npeers = [\"10.10.2.252:8848\"]\n", &["sync.peers[0]", "without a port"]);
    bad("[sync]\npeers = [\"239.1.1.1\"]\n", &["sync.peers[0]", "unicast"]);
    bad("[sync]\npeers = [\"10.10.2.251\"]\n", &["sync.peers[0]", "this node's own", "p1"]);
    bad("[sync]\npeers = [\"10.10.2.252\", \"10.10.2.252\"]\n", &["sync.peers[1]", "duplicate sync peer"]);
    bad("[sync]\n[[sync.peer]]\nlips = [\"10.10.2.2\"]\n", &["sync.peer[0]", "address"]);
    bad(
        "[sync]\n[[sync.peer]]\naddress = \"10.10.2.252\"\nlips = [\"10.10.2.1\"]\n",
        &["sync.peer[0].lips[0]", "this node's"],
    );
    bad(
        "[sync]\n[[sync.peer]]\naddress = \"10.10.2.252\"\nlips = [\"10.10.2.2\", \"10.10.2.2\"]\n",
        &["sync.peer[0].lips[1]", "twice"],
    );
    bad("[sync]\nport = 8848\npeer = 3\n", &["sync"]);
    bad("[sync]\npeers = [\"10.10.2.252\"]\nmulticast = \"239.1.1.1\"\n", &["multicast"]);
}

#[test]
fn the_peers_lips_are_the_routings_backup_routes() {
    let text = with(
        "[routing]\nbird_socket = \"/run/bird/bird.ctl\"\nasn = 65001\n\n[[routing.peer]]\naddress = \"10.10.3.254\"\nasn = 65000\n\n[sync]\n[[sync.peer]]\naddress = \"10.10.2.252\"\nlips = [\"10.10.2.2\"]\n",
    );
    let c = parse(&text, "t").unwrap();
    assert_eq!(c.routing.unwrap().backup_lips, ["10.10.2.2".parse::<IpAddr>().unwrap()]);
}
