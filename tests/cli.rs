//! The operator's CLI against a fake daemon: a thread on a Unix socket in a temporary
//! directory that records each JSON-line request and answers a canned response. Each test
//! runs the real binary with `--socket` (or `--config`) and checks its stdout, stderr, exit
//! code and the request the fake received.

use sluice::cli::client;
use sluice::control::proto::{
    BackendInfo, FlowFilter, FlowInfo, FlowsReply, Request, Response, ServiceInfo, ServiceSpec,
    ServicesReply, StatsReply,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// A fake daemon: answers every request with `answer(request)`, a whole response line.
struct Fake {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    /// The requests received, as sent on the wire.
    lines: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn new(answer: impl Fn(&Request) -> String + Send + Sync + 'static) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sluice.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (seen, answer) = (Arc::clone(&lines), Arc::new(answer));
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                std::thread::spawn(move || {
                    let mut writer = conn.try_clone().unwrap();
                    for line in BufReader::new(conn).lines() {
                        let Ok(line) = line else { return };
                        seen.lock().unwrap().push(line.clone());
                        let reply = match serde_json::from_str::<Request>(&line) {
                            Ok(req) => answer(&req),
                            Err(e) => {
                                serde_json::to_string(&Response::err(format!("bad request: {e}"))).unwrap()
                            }
                        };
                        if writer.write_all(format!("{reply}\n").as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Fake { _dir: dir, socket, lines }
    }

    /// A fake that answers `ok` with `data` to everything.
    fn ok(data: impl serde::Serialize + Send + Sync + 'static) -> Fake {
        let line = serde_json::to_string(&Response::ok(&data)).unwrap();
        Fake::new(move |_| line.clone())
    }

    /// The requests received, parsed.
    fn requests(&self) -> Vec<Request> {
        self.lines.lock().unwrap().iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Runs `sluice ARGS --socket SOCKET`.
    fn run(&self, args: &[&str]) -> Out {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--socket", self.socket.to_str().unwrap()]);
        sluice(&all)
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sluice(args: &[&str]) -> Out {
    let Output { status, stdout, stderr } =
        Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().expect("run sluice");
    Out {
        code: status.code().expect("exited"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn services_reply() -> ServicesReply {
    let backend = |address: &str, weight, active, inactive, health: &str| BackendInfo {
        address: address.into(),
        weight,
        health: health.into(),
        active,
        inactive,
        ..BackendInfo::default()
    };
    ServicesReply {
        services: vec![
            ServiceInfo {
                vip: "10.10.1.100:80".into(),
                protocol: "tcp".into(),
                scheduler: "wrr".into(),
                local_addresses: vec!["10.10.2.1".into(), "10.10.2.2".into()],
                backends: vec![
                    backend("10.10.2.11:80", 3, 12, 4, "up"),
                    backend("10.10.2.12:80", 1, 3, 1, "down"),
                ],
                ..ServiceInfo::default()
            },
            ServiceInfo {
                vip: "[fd00::1]:53".into(),
                protocol: "udp".into(),
                scheduler: "rr".into(),
                forward: "tun".into(),
                local_addresses: vec!["fd00::2:1".into()],
                conn_limit: 5000,
                ..ServiceInfo::default()
            },
        ],
        probes: Vec::new(),
    }
}

#[test]
fn services_prints_the_ipvsadm_table() {
    let fake = Fake::ok(services_reply());
    let out = fake.run(&["services"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health
TCP  10.10.1.100:80 wrr lip 10.10.2.1,10.10.2.2
  -> 10.10.2.11:80                FullNat 3      12         4         up
  -> 10.10.2.12:80                FullNat 1      3          1         down
UDP  [fd00::1]:53 rr lip fd00::2:1 limit 5000
"
    );
    assert_eq!(fake.requests(), vec![Request::Services]);
    assert_eq!(fake.lines.lock().unwrap()[0], r#"{"cmd":"services"}"#);
}

#[test]
fn services_json_is_the_data_exactly_as_received() {
    // Keys in an order serde_json's own map would not keep, and a number written as 1.50.
    let data = r#"{"services":[],"zeta":1.50,"alpha":null}"#;
    let fake = Fake::new(move |_| format!(r#"{{"ok":true,"data":{data}}}"#));
    let out = fake.run(&["services", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, format!("{data}\n"));
}

#[test]
fn flows_sends_the_filter_and_prints_the_footer() {
    let flow = FlowInfo {
        worker: 1,
        protocol: "tcp".into(),
        state: "ESTABLISHED".into(),
        expire_ms: 88_000,
        client: "10.10.1.10:40000".into(),
        vip: "10.10.1.100:80".into(),
        lip: "10.10.2.1:1025".into(),
        forward: "fullnat".into(),
        backend: "10.10.2.11:80".into(),
        location: "nic".into(),
        record: Some(3),
        packets_in: 12,
        packets_out: 10,
        bytes_in: 1229,
        bytes_out: 15 << 20,
        idle_ms: 0,
    };
    let fake = Fake::ok(FlowsReply { total: 3, flows: vec![flow] });
    let out = fake.run(&["flows", "--vip", "10.10.1.100:80", "--state", "established", "--limit", "1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "\
[w] pro expire state       source              virtual            local              destination        where forward packets      bytes
[1] TCP 01:28  ESTABLISHED 10.10.1.10:40000    10.10.1.100:80     10.10.2.1:1025     10.10.2.11:80      nic   FullNat 12/10        1.2K/15.0M
1 of 3 connections
"
    );
    let want = FlowFilter {
        vip: Some("10.10.1.100:80".into()),
        backend: None,
        state: Some("ESTABLISHED".into()),
        limit: Some(1),
    };
    assert_eq!(fake.requests(), vec![Request::Flows(want)]);

    // An IPv6 backend filter without a port, normalised.
    let fake = Fake::ok(FlowsReply::default());
    let out = fake.run(&["flows", "--backend", "[fd00:0::2:11]"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        fake.requests(),
        vec![Request::Flows(FlowFilter { backend: Some("fd00::2:11".into()), ..FlowFilter::default() })]
    );
}

#[test]
fn flows_with_a_bad_state_or_address_is_bad_usage_and_asks_nothing() {
    let fake = Fake::ok(FlowsReply::default());
    let out = fake.run(&["flows", "--state", "SYN_SENT"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("SYN_SENT") && out.stderr.contains("ESTABLISHED SYN_RECV FIN_WAIT"),
        "{}",
        out.stderr
    );
    let out = fake.run(&["flows", "--vip", "10.10.1.300:80"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("10.10.1.300:80"), "{}", out.stderr);
    assert!(fake.requests().is_empty());
}

fn stats_reply() -> StatsReply {
    let mut s =
        StatsReply { uptime_s: 42, device: "in-process model".into(), workers: 2, ..StatsReply::default() };
    s.table.occupancy = 10;
    s.table.capacity = 1 << 20;
    s.nic.hits = 1000;
    s.punts.insert("miss".into(), 7);
    s.slowpath_drops.insert("no_service".into(), 0);
    s.rates.nic_packets = 1234.5;
    s.vips.insert("10.10.1.100:80/tcp".into(), 10);
    s
}

#[test]
fn stats_json_and_text() {
    let fake = Fake::ok(stats_reply());
    let out = fake.run(&["stats", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "one line: {}", out.stdout);
    let got: StatsReply = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(got, stats_reply());
    // All reasons in JSON, zero ones too.
    assert!(out.stdout.contains(r#""no_service":0"#));

    let out = fake.run(&["stats"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for want in
        ["device   in-process model", "workers  2", "punts by reason", "miss", "10 / 1048576", "1234.5"]
    {
        assert!(out.stdout.contains(want), "{want:?} not in\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("no_service"), "zero reasons are left out of the text");
    assert_eq!(fake.requests(), vec![Request::Stats, Request::Stats]);
}

#[test]
fn service_add_and_del_with_ipvsadm_shortcuts() {
    let fake = Fake::ok(());
    let out = fake.run(&[
        "service",
        "add",
        "-t",
        "10.10.1.100:80",
        "-s",
        "wrr",
        "-z",
        "10.10.2.1",
        "--local-address",
        "10.10.2.2",
        "--conn-limit",
        "100",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    let out = fake.run(&["service", "del", "-u", "[fd00::1]:53", "--reset"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    let out = fake.run(&[
        "service",
        "add",
        "--vip",
        "10.10.1.100:53",
        "--protocol",
        "udp",
        "-z",
        "10.10.2.1",
        "--json",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "null\n"), "{}", out.stderr);
    let out = fake.run(&[
        "service",
        "add",
        "-t",
        "10.10.1.101:80",
        "--forward",
        "nat",
        "--nat-gateway",
        "10.10.2.254",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    let out = fake.run(&["service", "add", "-t", "10.10.1.102:80", "--forward", "direct"]);
    assert_eq!(out.code, 2, "an unknown mode is refused by the CLI: {}", out.stderr);
    assert_eq!(
        fake.requests(),
        vec![
            Request::ServiceAdd(ServiceSpec {
                vip: "10.10.1.100:80".into(),
                protocol: "tcp".into(),
                scheduler: "wrr".into(),
                forward: "fullnat".into(),
                nat_gateway: None,
                local_addresses: vec!["10.10.2.1".into(), "10.10.2.2".into()],
                conn_limit: 100,
                synproxy: false,
                proxy_protocol: None,
            }),
            Request::ServiceDel { vip: "[fd00::1]:53".into(), protocol: "udp".into(), reset: true },
            Request::ServiceAdd(ServiceSpec {
                vip: "10.10.1.100:53".into(),
                protocol: "udp".into(),
                scheduler: "wlc".into(),
                forward: "fullnat".into(),
                nat_gateway: None,
                local_addresses: vec!["10.10.2.1".into()],
                conn_limit: 0,
                synproxy: false,
                proxy_protocol: None,
            }),
            Request::ServiceAdd(ServiceSpec {
                vip: "10.10.1.101:80".into(),
                protocol: "tcp".into(),
                scheduler: "wlc".into(),
                forward: "nat".into(),
                nat_gateway: Some("10.10.2.254".into()),
                local_addresses: vec![],
                conn_limit: 0,
                synproxy: false,
                proxy_protocol: None,
            }),
        ]
    );
}

#[test]
fn backend_add_set_del() {
    let fake = Fake::ok(());
    for args in [
        &["backend", "add", "-t", "10.10.1.100:80", "-r", "10.10.2.13"][..],
        &["backend", "set", "-t", "10.10.1.100:80", "-r", "10.10.2.11:80", "-w", "0"],
        &["backend", "del", "--vip", "10.10.1.100:80", "--address", "10.10.2.12:80", "--reset"],
    ] {
        let out = fake.run(args);
        assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "", ""), "{args:?}");
    }
    let (vip, protocol) = (String::from("10.10.1.100:80"), String::from("tcp"));
    assert_eq!(
        fake.requests(),
        vec![
            // Without a port the server takes the service's; weight 1 by default.
            Request::BackendAdd {
                vip: vip.clone(),
                protocol: protocol.clone(),
                address: "10.10.2.13:80".into(),
                weight: 1
            },
            Request::BackendSet {
                vip: vip.clone(),
                protocol: protocol.clone(),
                address: "10.10.2.11:80".into(),
                weight: 0
            },
            Request::BackendDel { vip, protocol, address: "10.10.2.12:80".into(), reset: true },
        ]
    );
    assert_eq!(
        fake.lines.lock().unwrap()[1],
        r#"{"cmd":"backend_set","vip":"10.10.1.100:80","protocol":"tcp","address":"10.10.2.11:80","weight":0}"#
    );
}

#[test]
fn a_refusal_is_printed_and_exits_1() {
    let fake = Fake::new(|req| {
        let r = match req {
            Request::BackendSet { address, .. } => {
                Response::err(format!("no real server {address} in tcp 10.10.1.100:80"))
            }
            _ => Response::err("sluice.toml line 3: port[0].mtu = 10: expected 68..=9000"),
        };
        serde_json::to_string(&r).unwrap()
    });
    let out = fake.run(&["backend", "set", "-t", "10.10.1.100:80", "-r", "10.10.2.99:80", "-w", "2"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "sluice: no real server 10.10.2.99:80 in tcp 10.10.1.100:80\n");
    let out = fake.run(&["reload"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert_eq!(out.stderr, "sluice: sluice.toml line 3: port[0].mtu = 10: expected 68..=9000\n");
}

#[test]
fn reload_says_reloaded() {
    let fake = Fake::ok(());
    let out = fake.run(&["reload"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "reloaded\n"), "{}", out.stderr);
    assert_eq!(fake.requests(), vec![Request::Reload]);
    assert_eq!(fake.lines.lock().unwrap()[0], r#"{"cmd":"reload"}"#);
}

#[test]
fn no_daemon_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sluice.sock");
    let s = socket.to_str().unwrap();
    for cmd in [
        &["services"][..],
        &["flows"],
        &["stats", "--json"],
        &["reload"],
        &["backend", "set", "-t", "1.2.3.4:80", "-r", "5.6.7.8", "-w", "1"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--socket", s]);
        let out = sluice(&args);
        assert_eq!(out.code, 1, "{cmd:?}");
        assert_eq!(
            out.stderr,
            format!(
                "sluice: no daemon at {s} (no such socket): start one with sluice run --config FILE, or name its socket with --socket\n"
            )
        );
        assert_eq!(out.stdout, "");
    }
    // A socket file left behind by a dead daemon.
    drop(UnixListener::bind(&socket).unwrap());
    let out = sluice(&["services", "--socket", s]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!("sluice: no daemon at {s} (connection refused): start one with")),
        "{}",
        out.stderr
    );
}

fn config_with_socket(dir: &Path, socket: &Path) -> PathBuf {
    let file = dir.join("sluice.toml");
    let text = format!(
        "[control]\nsocket = \"{}\"\n\n[[port]]\nname = \"p0\"\naddresses = [\"10.10.1.1/24\"]\n\n[[service]]\nvip = \"10.10.1.100:80\"\nlocal_addresses = [\"10.10.1.2\"]\n[[service.backend]]\naddress = \"10.10.1.11:80\"\n",
        socket.display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn config_file_names_the_socket() {
    let fake = Fake::ok(services_reply());
    let dir = tempfile::tempdir().unwrap();
    let file = config_with_socket(dir.path(), &fake.socket);
    let out = sluice(&["services", "--config", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("Prot LocalAddress:Port Scheduler Flags\n"));
    assert_eq!(fake.requests(), vec![Request::Services]);

    // A configuration that cannot be read is bad input; --socket and --config together too.
    let out = sluice(&["services", "--config", dir.path().join("missing.toml").to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("sluice: ") && out.stderr.contains("missing.toml"), "{}", out.stderr);
    let out = fake.run(&["services", "--config", file.to_str().unwrap()]);
    assert_eq!(out.code, 2);
}

#[test]
fn top_without_a_terminal_refuses() {
    let fake = Fake::ok(stats_reply());
    let out = fake.run(&["top"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("top needs a terminal") && out.stderr.contains("sluice stats"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_client_module_is_usable_from_tests() {
    let fake = Fake::ok(stats_reply());
    let mut c = client::Client::connect(&fake.socket).unwrap();
    // One connection, several requests (as top does).
    for _ in 0..3 {
        let r = c.call(&Request::Stats).unwrap();
        assert!(r.ok);
        assert_eq!(serde_json::from_value::<StatsReply>(r.data).unwrap(), stats_reply());
    }
    assert_eq!(fake.requests().len(), 3);
}
