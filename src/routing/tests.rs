//! The include file BIRD reads, the reply parser, and the announcer against a stand-in BIRD
//! on a Unix socket (it answers `configure` and `show protocols` as BIRD 2 does).

use super::bird::{self, Announce};
use super::*;
use crate::config::{Peer, Routing};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn routing(dir: &Path) -> Routing {
    Routing {
        bird_socket: dir.join("bird.ctl"),
        include_file: dir.join("bird-sluice.conf"),
        asn: 65001,
        bfd: true,
        bfd_interval_ms: 100,
        bfd_multiplier: 3,
        hold_time_s: 3,
        announce_lips: true,
        peers: vec![
            Peer { address: "10.10.3.254".parse().unwrap(), asn: 65000, port: 179, bfd: true },
            Peer { address: "10.10.3.253".parse().unwrap(), asn: 65001, port: 1179, bfd: false },
        ],
        priorities: vec![("10.99.0.101".parse().unwrap(), 2)],
        backup_lips: vec!["10.10.2.2".parse().unwrap()],
    }
}

fn vip(a: &str, priority: u8) -> Announce {
    Announce { address: a.parse().unwrap(), kind: "vip".into(), priority }
}

#[test]
fn the_include_file_maps_priority_to_med_prepends_and_local_pref() {
    let dir = tempfile::tempdir().unwrap();
    let r = routing(dir.path());
    let lip = Announce { address: "10.10.2.1".parse().unwrap(), kind: "lip".into(), priority: 0 };
    let text =
        bird::include_text(&r, &[lip, vip("10.99.0.100", 0), vip("10.99.0.101", 2), vip("fd00:99::100", 0)]);
    for part in [
        "protocol static sluice_v4 {\n  ipv4;\n  route 10.10.2.1/32 blackhole;\n  route 10.99.0.100/32 blackhole;\n  route 10.99.0.101/32 blackhole;\n}",
        "protocol static sluice_v6 {\n  ipv6;\n  route fd00:99::100/128 blackhole;\n}",
        "if net.type = NET_IP4 then { if net ~ [ 10.99.0.101/32 ] then { bgp_med = 2; bgp_path.prepend(65001); bgp_path.prepend(65001); } }",
        "bgp_med = 2; bgp_local_pref = 80; bgp_path.prepend(65001);",
        "protocol bfd sluice_bfd {\n  interface \"*\" { interval 100 ms; multiplier 3; };\n}",
        "local as 65001;\n  neighbor 10.10.3.254 port 179 as 65000;",
        "hold time 3; keepalive time 1;",
        "  bfd on;\n  ipv4 { import none; export filter sluice_export_ebgp; };",
        "neighbor 10.10.3.253 port 1179 as 65001;\n  direct;",
        "ipv4 { import none; export filter sluice_export_ibgp; next hop self; };",
    ] {
        assert!(text.contains(part), "{text}\n lacks {part:?}");
    }
    assert_eq!(text.matches("bfd on").count(), 1, "{text}");
    // Nothing announced: empty static protocols, the sessions stay.
    let empty = bird::include_text(&r, &[]);
    assert!(
        empty.contains("protocol static sluice_v4 {\n  ipv4;\n}") && empty.contains("sluice_peer1"),
        "{empty}"
    );
}

#[test]
fn show_protocols_is_parsed_with_either_time_format() {
    let lines: Vec<bird::Line> = vec![
        (2002, "Name       Proto      Table      State  Since         Info".into()),
        (1002, "sluice_peer0 BGP        ---        up     14:01:02.123  Established   ".into()),
        (1002, "sluice_bfd BFD        ---        up     2026-12-05 14:01:02  ".into()),
        (1002, "sluice_peer1 BGP        ---        start  14:01:02.123  Active        Socket: Connection refused".into()),
        (0, String::new()),
    ];
    let p = bird::parse_protocols(&lines);
    assert_eq!(p.len(), 3);
    assert_eq!(
        (p[0].name.as_str(), p[0].proto.as_str(), p[0].state.as_str(), p[0].info.as_str()),
        ("sluice_peer0", "BGP", "up", "Established")
    );
    assert_eq!(p[1].info, "");
    assert_eq!(p[2].info, "Active Socket: Connection refused");
}

/// A stand-in BIRD: greets, answers `configure` and `show protocols`, counts configures;
/// `gone` makes it close every connection and refuse new ones.
struct FakeBird {
    path: PathBuf,
    configures: Arc<AtomicUsize>,
    gone: Arc<AtomicBool>,
}

impl FakeBird {
    fn start(path: &Path) -> FakeBird {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        let configures = Arc::new(AtomicUsize::new(0));
        let gone = Arc::new(AtomicBool::new(false));
        let (c, g) = (configures.clone(), gone.clone());
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                if g.load(Ordering::SeqCst) {
                    return;
                }
                let (c, g) = (c.clone(), g.clone());
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    let _ = s.write_all(b"0001 BIRD 2.0.12 ready.\n");
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut line = String::new();
                    while !g.load(Ordering::SeqCst) {
                        match r.read_line(&mut line) {
                            Ok(0) => return,
                            Ok(_) => {}
                            Err(_) => continue,
                        }
                        let answer = match line.trim() {
                            "configure" => {
                                c.fetch_add(1, Ordering::SeqCst);
                                "0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n"
                            }
                            "show protocols" => {
                                "2002-Name       Proto      Table      State  Since         Info\n1002-device1    Device     ---        up     14:01:02.123  \n sluice_peer0 BGP        ---        up     14:01:02.123  Established   \n0000 \n"
                            }
                            _ => "9001 syntax error\n",
                        };
                        let _ = s.write_all(answer.as_bytes());
                        line.clear();
                    }
                });
            }
        });
        FakeBird { path: path.to_path_buf(), configures, gone }
    }

    fn stop(&self) {
        self.gone.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_announcer_configures_bird_and_survives_bird_going_away() {
    let dir = tempfile::tempdir().unwrap();
    let r = routing(dir.path());
    let bird1 = FakeBird::start(&r.bird_socket);
    let a = Announcer::start(r.clone()).unwrap();
    let set = vec![vip("10.99.0.100", 0)];
    let _ = a.tx.send(Msg::Set(set.clone()));
    until("the set to be announced", || a.status().announced == set);
    let st = a.status();
    assert!(st.bird_up && st.updates >= 1, "{st:?}");
    assert_eq!(st.protocols.len(), 1, "only sluice_ protocols: {st:?}");
    let text = std::fs::read_to_string(&r.include_file).unwrap();
    assert!(text.contains("route 10.99.0.100/32 blackhole;"), "{text}");
    assert!(
        a.metrics()
            .contains("sluice_routing_announced{prefix=\"10.99.0.100/32\",kind=\"vip\",priority=\"0\"} 1")
    );
    assert!(a.metrics().contains("sluice_routing_session_up{protocol=\"sluice_peer0\"} 1"));

    // BIRD goes away: reported (not up, failures counted), retried.
    bird1.stop();
    let _ = a.tx.send(Msg::Set(Vec::new()));
    until("the failure to be reported", || !a.status().bird_up);
    let st = a.status();
    assert!(st.bird_failures >= 1 && st.last_error.is_some() && st.wanted.is_empty(), "{st:?}");
    assert!(a.metrics().contains("sluice_routing_bird_up 0"));
    assert!(super::cli::format(&st).contains("UNREACHABLE"));

    // BIRD comes back: the wanted set is applied without anyone asking again.
    let bird2 = FakeBird::start(&r.bird_socket);
    until("BIRD to be used again", || a.status().bird_up);
    assert!(bird2.configures.load(Ordering::SeqCst) >= 1);
    assert!(a.status().announced.is_empty());
    assert!(!std::fs::read_to_string(&r.include_file).unwrap().contains("10.99.0.100"));
    a.stop();
}

#[test]
fn sync_peers_lips_are_backup_routes_at_the_lowest_priority() {
    let dir = tempfile::tempdir().unwrap();
    let r = routing(dir.path());
    let none = slowpath::service::Services::default().snapshot();
    let w = wanted(&r, &none, true);
    let backup = Announce { address: "10.10.2.2".parse().unwrap(), kind: "backup".into(), priority: 9 };
    assert_eq!(w, vec![backup.clone()]);
    assert!(wanted(&r, &none, false).is_empty(), "nothing while the datapath is down");
    assert!(wanted(&Routing { announce_lips: false, ..r.clone() }, &none, true).is_empty());
    let text = bird::include_text(&r, &w);
    let prepends = " bgp_path.prepend(65001);".repeat(9);
    for part in [
        "route 10.10.2.2/32 blackhole;".to_string(),
        format!("if net ~ [ 10.10.2.2/32 ] then {{ bgp_med = 9;{prepends} }}"),
        format!("if net ~ [ 10.10.2.2/32 ] then {{ bgp_med = 9; bgp_local_pref = 10;{prepends} }}"),
    ] {
        assert!(text.contains(&part), "{text}\n lacks {part:?}");
    }
}

#[test]
fn sluice_cluster_shows_sync_with_or_without_routing() {
    let sync = crate::sync::SyncStatus {
        node_id: 7,
        port: 8848,
        queue_bound: 65536,
        standby: 3,
        peers: vec![crate::sync::PeerStatus { address: "10.10.2.252".into(), ..Default::default() }],
        ..Default::default()
    };
    let alone = cli::format(&ClusterReply { sync: Some(sync.clone()), ..ClusterReply::default() });
    assert!(alone.starts_with("No [routing]: this node announces nothing."), "{alone}");
    assert!(alone.contains("Sync: node 7 on UDP port 8848, queue 0/65536, 3 standby"), "{alone}");
    assert!(alone.contains("10.10.2.252") && alone.contains("never"), "{alone}");
    let both = cli::format(&ClusterReply {
        bird_socket: "/run/bird/bird.ctl".into(),
        bird_up: true,
        sync: Some(sync),
        ..ClusterReply::default()
    });
    assert!(both.starts_with("BIRD up at /run/bird/bird.ctl") && both.contains("Sync: node 7"), "{both}");
}
