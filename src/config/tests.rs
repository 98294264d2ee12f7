//! Good configurations: the issue's example, [`EXAMPLE`], defaults and the helpers. The
//! property test over edited files is in `tests_edits`.

use super::*;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The example of the issue that specified the configuration, verbatim.
pub(super) const ISSUE: &str = r#"
[device]
transport = "sim"                  # "sim" (in-process model: the default), "vfio-user", "vfio"
socket = "/run/sluice/nic0.sock"   # vfio-user
pci = "0000:03:00.0"               # vfio
workers = 2
[[port]]
name = "p0"
interface = "lb0"                  # sim: the Linux interface the model's port is attached to
addresses = ["10.10.1.1/24"]
[[route]]
prefix = "0.0.0.0/0"
via = "10.10.1.254"
[[neighbor]]                       # optional static entries
address = "10.10.2.11"
mac = "02:00:00:00:02:11"
[[service]]
vip = "10.10.1.100:80"
protocol = "tcp"
scheduler = "wrr"                  # rr | wrr | lc | wlc | sh | mh
local_addresses = ["10.10.2.1"]
health = { kind = "tcp", interval_ms = 1000, rise = 2, fall = 3 }
[[service.backend]]
address = "10.10.2.11:80"
weight = 1
"#;

/// The smallest useful configuration: one port, one service, one backend.
pub(super) const MINIMAL: &str = r#"
[[port]]
name = "p0"
addresses = ["10.10.1.1/24"]
[[service]]
vip = "10.10.1.100:80"
local_addresses = ["10.10.1.2"]
[[service.backend]]
address = "10.10.1.11:80"
"#;

fn ok(text: &str) -> Config {
    parse(text, "sluice.toml").unwrap_or_else(|e| panic!("should parse: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

#[test]
fn issue_example_parses_to_typed_values() {
    let cfg = ok(ISSUE);
    assert_eq!(cfg.origin, "sluice.toml");
    assert_eq!(cfg.device.transport, Transport::Sim, "socket and pci are ignored by sim");
    assert_eq!(cfg.device.workers, 2);
    assert_eq!(
        cfg.ports,
        vec![Port {
            name: "p0".into(),
            interface: Some("lb0".into()),
            mac: None,
            addresses: vec![Cidr { addr: ip("10.10.1.1"), len: 24 }],
            mtu: 1500,
            kind: PortKind::Auto,
            queue: 0,
        }]
    );
    assert_eq!(
        cfg.routes,
        vec![Route { prefix: cidr("0.0.0.0/0"), via: ip("10.10.1.254"), port: "p0".into() }]
    );
    assert_eq!(
        cfg.neighbors,
        vec![Neighbor { address: ip("10.10.2.11"), mac: Mac([2, 0, 0, 0, 2, 0x11]), port: None }],
        "no port has 10.10.2.0/24: the entry is not tied to a port"
    );
    let health = Health {
        kind: HealthKind::Tcp,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 3,
    };
    assert_eq!(
        cfg.services,
        vec![Service {
            vip: "10.10.1.100:80".parse().unwrap(),
            protocol: Protocol::Tcp,
            scheduler: "wrr".into(),
            forward: Forward::FullNat,
            nat_gateway: None,
            local_addresses: vec![ip("10.10.2.1")],
            conn_limit: 0,
            synproxy: false,
            synproxy_wscale: 7,
            synproxy_timestamps: true,
            proxy_protocol: None,
            health: Some(health),
            backends: vec![Backend { address: "10.10.2.11:80".parse().unwrap(), weight: 1 }],
        }]
    );
    assert_eq!(cfg.services[0].name(), "10.10.1.100:80/tcp");
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let cfg = ok(MINIMAL);
    assert_eq!(
        cfg.device,
        Device {
            transport: Transport::Sim,
            workers: 1,
            interrupts: false,
            ring_log2: 10,
            give_up_s: 60,
            datapath_thread: None
        }
    );
    assert_eq!(cfg.control.socket, PathBuf::from("/run/sluice/sluice.sock"));
    assert_eq!(cfg.control.metrics, "127.0.0.1:9100".parse().unwrap());
    assert_eq!(cfg.ports[0].mtu, 1500);
    assert_eq!((cfg.ports[0].interface.as_ref(), cfg.ports[0].mac), (None, None));
    let s = &cfg.services[0];
    assert_eq!((s.protocol, s.scheduler.as_str(), s.conn_limit, &s.health), (Protocol::Tcp, "wlc", 0, &None));
    assert_eq!(s.backends[0].weight, 1);
    let secs = Duration::from_secs;
    assert_eq!(
        cfg.timeouts,
        Timeouts {
            tcp_established: secs(90),
            tcp_syn_recv: secs(30),
            tcp_fin_wait: secs(7),
            tcp_close_wait: secs(7),
            tcp_time_wait: secs(7),
            tcp_last_ack: secs(7),
            tcp_close: secs(3),
            udp: secs(300),
            quarantine: secs(120),
        }
    );
    assert_eq!(
        cfg.offload,
        Offload {
            enabled: true,
            tcp_after: TcpOffloadAfter::Handshake,
            udp_after: UdpOffloadAfter::Reply,
            min_packets: 0,
            min_age: Duration::ZERO,
            forward_fin: true,
        }
    );
    assert_eq!(
        cfg.limits,
        Limits {
            half_open_per_worker: 65536,
            half_open_per_source: 0,
            punt_share: std::collections::BTreeMap::default(),
            lport_min: 1024,
            lport_max: 65535
        }
    );
    assert_eq!(cfg.icmp, Icmp { echo: true });
    assert_eq!(cfg.host, Host { tap: true, tap_prefix: "sl-".into() });
    assert!(cfg.routes.is_empty() && cfg.neighbors.is_empty());
}

#[test]
fn example_parses_with_the_values_it_shows() {
    let cfg = ok(EXAMPLE);
    assert_eq!(cfg.ports.len(), 2);
    assert_eq!(cfg.ports[1].addresses, vec![cidr("10.10.2.254/24"), cidr("fd00:2::fe/64")]);
    assert_eq!(cfg.routes[1].port, "p0", "::/0 via fd00:1::fe resolves to p0");
    assert_eq!(cfg.neighbors[0].port.as_deref(), Some("p1"));
    let names: Vec<String> = cfg.services.iter().map(Service::name).collect();
    assert_eq!(
        names,
        ["10.10.1.100:80/tcp", "10.10.1.100:53/udp", "[fd00:1::100]:80/tcp", "10.10.1.100:443/tcp"]
    );
    assert!(cfg.services[3].synproxy && cfg.services[3].synproxy_timestamps);
    assert_eq!(cfg.services[2].local_addresses, vec![ip("fd00:2::1")]);
    assert_eq!(cfg.services[2].proxy_protocol.as_deref(), Some("v2"));
    assert_eq!(cfg.services[0].proxy_protocol, None, "none by default");
    assert_eq!(cfg.services[0].backends[2].weight, 0);
    let http = cfg.services[0].health.as_ref().unwrap();
    assert_eq!(
        http.kind,
        HealthKind::Http { path: "/healthz".into(), expect: 200, host: Some("www.example.com".into()) }
    );
    assert_eq!(http.timeout, Duration::from_millis(500));
    let tcp = cfg.services[1].health.as_ref().unwrap();
    assert_eq!((tcp.interval, tcp.timeout), (Duration::from_secs(2), Duration::from_secs(1)));
}

/// Every key of the schema, as a path without list indices.
const ALL_KEYS: &[&str] = &[
    "device.transport",
    "device.socket",
    "device.pci",
    "device.workers",
    "device.interrupts",
    "device.ring_log2",
    "device.give_up_s",
    "device.datapath_thread",
    "control.socket",
    "control.metrics",
    "port.name",
    "port.interface",
    "port.mac",
    "port.addresses",
    "port.mtu",
    "port.kind",
    "port.queue",
    "route.prefix",
    "route.via",
    "route.port",
    "neighbor.address",
    "neighbor.mac",
    "neighbor.port",
    "service.vip",
    "service.protocol",
    "service.scheduler",
    "service.local_addresses",
    "service.conn_limit",
    "service.synproxy",
    "service.synproxy_wscale",
    "service.synproxy_timestamps",
    "service.proxy_protocol",
    "service.health.kind",
    "service.health.interval_ms",
    "service.health.timeout_ms",
    "service.health.rise",
    "service.health.fall",
    "service.health.path",
    "service.health.expect",
    "service.health.host",
    "service.backend.address",
    "service.backend.weight",
    "probe.name",
    "probe.target",
    "probe.check.kind",
    "probe.check.path",
    "probe.check.expect",
    "probe.check.host",
    "probe.check.interval_ms",
    "probe.check.timeout_ms",
    "probe.check.rise",
    "probe.check.fall",
    "timeouts.tcp_established",
    "timeouts.tcp_syn_recv",
    "timeouts.tcp_fin_wait",
    "timeouts.tcp_close_wait",
    "timeouts.tcp_time_wait",
    "timeouts.tcp_last_ack",
    "timeouts.tcp_close",
    "timeouts.udp",
    "timeouts.quarantine",
    "offload.enabled",
    "offload.tcp_after",
    "offload.udp_after",
    "offload.min_packets",
    "offload.min_age_ms",
    "offload.forward_fin",
    "limits.half_open_per_worker",
    "limits.half_open_per_source",
    "limits.punt_share.miss",
    "limits.lport_min",
    "limits.lport_max",
    "icmp.echo",
    "host.tap",
    "host.tap_prefix",
];

/// The leaf keys of a document, as paths without list indices.
fn leaf_keys(text: &str) -> BTreeSet<String> {
    fn walk(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
        for (k, v) in table {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                toml::Value::Table(t) => walk(t, &path, out),
                toml::Value::Array(items) if items.iter().all(toml::Value::is_table) && !items.is_empty() => {
                    for item in items {
                        walk(item.as_table().unwrap(), &path, out);
                    }
                }
                _ => {
                    out.insert(path);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&text.parse::<toml::Table>().unwrap(), "", &mut out);
    out
}

#[test]
fn example_uses_every_key_and_the_module_docs_list_them() {
    let used = leaf_keys(EXAMPLE);
    let all: BTreeSet<String> = ALL_KEYS.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(used, all, "EXAMPLE and ALL_KEYS differ");
    assert!(leaf_keys(ISSUE).is_subset(&all));
    let docs = include_str!("mod.rs");
    for key in ALL_KEYS {
        let last = key.rsplit('.').next().unwrap();
        assert!(
            docs.contains(&format!("`{last}`")) || docs.contains(&format!("`{key}`")),
            "{key} undocumented"
        );
    }
}

#[test]
fn health_defaults_follow_keepalived() {
    let text = MINIMAL.replace("local_addresses", "health = { kind = \"http\" }\nlocal_addresses");
    let h = ok(&text).services[0].health.clone().unwrap();
    assert_eq!(h.kind, HealthKind::Http { path: "/".into(), expect: 200, host: None });
    assert_eq!(
        (h.interval, h.timeout, h.rise, h.fall),
        (Duration::from_secs(1), Duration::from_secs(1), 2, 3)
    );
    let text =
        MINIMAL.replace("local_addresses", "health = { kind = \"tcp\", interval_ms = 300 }\nlocal_addresses");
    let h = ok(&text).services[0].health.clone().unwrap();
    assert_eq!(h.timeout, Duration::from_millis(300), "timeout defaults to the interval when it is shorter");
}

#[test]
fn port_mac_follows_the_default_rule() {
    let text = r#"
[[port]]
name = "a"
mac = "02-00-00-00-AA-01"
interface = "lb0"
[[port]]
name = "b"
interface = "lb1"
[[port]]
name = "c"
"#;
    let cfg = ok(text);
    assert_eq!(cfg.port_mac(0), Some(Mac([2, 0, 0, 0, 0xaa, 1])), "mac wins over the interface");
    assert_eq!(cfg.port_mac(1), None, "the daemon reads the interface's MAC");
    assert_eq!(cfg.port_mac(2), Some(Mac([2, 0, 0, 0, 0, 3])), "index 2: 02:00:00:00:00:03");
    assert_eq!(cfg.port_mac(3), None);
    assert_eq!((cfg.port_index("b"), cfg.port_index("z")), (Some(1), None));
    assert!(cfg.services.is_empty(), "a configuration without services is valid");
}

#[test]
fn routes_and_neighbors_resolve_their_port_by_longest_prefix() {
    let text = r#"
[[port]]
name = "wide"
addresses = ["10.0.0.1/8"]
[[port]]
name = "narrow"
addresses = ["10.10.2.254/24"]
[[route]]
prefix = "192.168.0.0/16"
via = "10.10.2.1"
[[route]]
prefix = "172.16.0.0/12"
via = "10.20.0.1"
[[route]]
prefix = "172.31.0.0/16"
via = "10.20.0.1"
port = "narrow"
[[neighbor]]
address = "10.10.2.7"
mac = "02:00:00:00:02:07"
"#;
    let cfg = ok(text);
    let ports: Vec<&str> = cfg.routes.iter().map(|r| r.port.as_str()).collect();
    assert_eq!(ports, ["narrow", "wide", "narrow"], "an explicit port is kept as given");
    assert_eq!(cfg.neighbors[0].port.as_deref(), Some("narrow"));
    assert_eq!(cfg.connected_port(&ip("10.99.0.1")), Some(0));
    assert_eq!(cfg.connected_port(&ip("11.0.0.1")), None);
}

#[test]
fn one_address_carries_tcp_and_udp_services() {
    let udp = "[[service]]\nvip = \"10.10.1.100:80\"\nprotocol = \"udp\"\nlocal_addresses = [\"10.10.1.2\"]\n\
               [[service.backend]]\naddress = \"10.10.1.11:80\"\n";
    let text = format!("{MINIMAL}{udp}");
    let cfg = ok(&text);
    assert_eq!(cfg.services.len(), 2);
    assert_eq!((cfg.services[0].protocol, cfg.services[1].protocol), (Protocol::Tcp, Protocol::Udp));
    assert_eq!(cfg.services[0].vip, cfg.services[1].vip);
}

#[test]
fn transports_take_their_socket_or_pci() {
    let user = ok(&format!("[device]\ntransport = \"vfio-user\"\nsocket = \"/tmp/nic0.sock\"\n{MINIMAL}"));
    assert_eq!(user.device.transport, Transport::VfioUser { socket: "/tmp/nic0.sock".into() });
    let vfio = ok(&format!("[device]\ntransport = \"vfio\"\npci = \"0000:AF:1f.7\"\n{MINIMAL}"));
    assert_eq!(vfio.device.transport, Transport::Vfio { pci: "0000:af:1f.7".into() }, "stored in lower case");
}

#[test]
fn cidr_contains_prints_and_parses() {
    let c = cidr("10.10.1.1/24");
    assert_eq!(c, Cidr { addr: ip("10.10.1.1"), len: 24 });
    assert_eq!(c.to_string(), "10.10.1.1/24");
    assert!(c.contains(&ip("10.10.1.200")) && !c.contains(&ip("10.10.2.1")));
    assert!(!c.contains(&ip("::ffff:10.10.1.1")), "another family is never inside");
    assert_eq!(c.network(), cidr("10.10.1.0/24"));
    assert!(!c.is_network() && c.network().is_network());
    assert!(cidr("0.0.0.0/0").contains(&ip("255.255.255.255")));
    assert!(cidr("10.1.2.3/32").contains(&ip("10.1.2.3")) && !cidr("10.1.2.3/32").contains(&ip("10.1.2.4")));
    let v6 = cidr("fd00:2::fe/64");
    assert!(v6.contains(&ip("fd00:2::1234:5")) && !v6.contains(&ip("fd00:3::1")));
    assert_eq!(v6.to_string(), "fd00:2::fe/64");
    assert!(cidr("::/0").contains(&ip("2001:db8::1")) && !cidr("::/0").contains(&ip("10.0.0.1")));
    assert_eq!(Cidr::new(ip("::1"), 129), None);
    assert_eq!(Cidr::new(ip("10.0.0.0"), 8), Some(cidr("10.0.0.0/8")));
    for bad in
        ["10.10.1.1", "10.10.1.1/33", "10.10.1.1/", "10.10.1.1/024", "10.10.1.1/+4", "x/8", "::/129", "/8"]
    {
        assert!(bad.parse::<Cidr>().is_err(), "{bad} should not parse");
    }
}

#[test]
fn mac_parses_either_separator_in_either_case() {
    let mac: Mac = "02:00:00:00:02:11".parse().unwrap();
    assert_eq!(mac, Mac([2, 0, 0, 0, 2, 0x11]));
    assert_eq!("02-00-00-00-02-11".parse::<Mac>().unwrap(), mac);
    assert_eq!("0A:bC:00:00:02:FF".parse::<Mac>().unwrap().to_string(), "0a:bc:00:00:02:ff");
    for bad in [
        "02:00:00:00:02",
        "02:00:00:00:02:11:22",
        "2:00:00:00:02:11",
        "02:00:00:00:02:1g",
        "020000000211",
        "",
    ] {
        assert!(bad.parse::<Mac>().is_err(), "{bad:?} should not parse");
    }
    assert!(mac.is_unicast());
    assert!(!Mac([1, 0, 0x5e, 0, 0, 1]).is_unicast() && !Mac([0; 6]).is_unicast());
    assert_eq!(Mac::for_port_index(0).to_string(), "02:00:00:00:00:01");
}

#[test]
fn config_serializes_to_json() {
    let json = serde_json::to_value(ok(EXAMPLE)).unwrap();
    assert_eq!(json["device"]["transport"], "sim");
    assert_eq!(json["ports"][0]["addresses"][0], "10.10.1.1/24");
    assert_eq!(json["ports"][0]["mac"], "02:00:00:00:01:01");
    assert_eq!(json["services"][0]["health"]["kind"], "http");
    assert_eq!(json["services"][0]["health"]["timeout"], "500ms");
    assert_eq!(json["services"][1]["protocol"], "udp");
    assert_eq!(json["timeouts"]["quarantine"], "120s");
    assert_eq!(json["offload"]["tcp_after"], "handshake");
    let vfio = ok(&format!("[device]\ntransport = \"vfio\"\npci = \"0000:03:00.0\"\n{MINIMAL}"));
    let json = serde_json::to_value(vfio).unwrap();
    assert_eq!(
        (&json["device"]["transport"], &json["device"]["pci"]),
        (&"vfio".into(), &"0000:03:00.0".into())
    );
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = std::env::temp_dir().join(format!("sluice-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sluice.toml");
    std::fs::write(&file, MINIMAL).unwrap();
    let cfg = load(&file).unwrap();
    assert_eq!(cfg.origin, file.display().to_string());
    std::fs::write(&file, MINIMAL.replace("10.10.1.100:80", "10.10.1.100")).unwrap();
    let err = load(&file).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{} line ", file.display())), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_interfaces_looks_only_where_sim_uses_them() {
    let dir = std::env::temp_dir().join(format!("sluice-config-net-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lb0")).unwrap();
    let text = MINIMAL.replace("name = \"p0\"", "name = \"p0\"\ninterface = \"lb0\"");
    let cfg = ok(&text);
    assert_eq!(check_interfaces_in(&cfg, &dir), Ok(()));
    let missing = ok(&text.replace("lb0", "lb9"));
    let err = check_interfaces_in(&missing, &dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sluice.toml: port[0].interface = \"lb9\": no such network interface (see ip link)"
    );
    assert_eq!(err.path(), "port[0].interface");
    let user =
        ok(&format!("[device]\ntransport = \"vfio-user\"\nsocket = \"/x\"\n{}", text.replace("lb0", "lb9")));
    assert_eq!(check_interfaces_in(&user, &dir), Ok(()), "vfio-user ignores interface");
    std::fs::remove_dir_all(&dir).unwrap();
    if Path::new("/sys/class/net/lo").exists() {
        assert_eq!(check_interfaces(&ok(&text.replace("lb0", "lo"))), Ok(()));
    }
}

#[test]
fn addresses_and_families_of_the_example() {
    let cfg = ok(EXAMPLE);
    assert_eq!(cfg.services[2].vip.ip(), IpAddr::V6(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x100)));
    assert_eq!(cfg.control.metrics.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
}
