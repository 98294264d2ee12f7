//! `sluice replay`: a capture with a TCP handshake to a VIP goes through the whole appliance;
//! the server side sees a LIP as the source and the chosen backend as the destination, every
//! checksum right (read back by etherparse, and by tcpdump in a test that needs it); the same run
//! twice gives identical files; bad arguments exit 2.

use etherparse::{SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use sluice_test_support::frame::Seg;
use sluice_test_support::verify::checksums;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CLIENT: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
const RS: [u8; 6] = [2, 0, 0, 0, 2, 0x11];
const P0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const P1: [u8; 6] = [2, 0, 0, 0, 0, 2];

const CONFIG: &str = r#"
[device]
transport = "sim"
[host]
tap = false
[[port]]
name = "p0"
addresses = ["10.10.1.1/24"]
[[port]]
name = "p1"
addresses = ["10.10.2.254/24"]
[[neighbor]]
address = "10.10.1.10"
mac = "02:00:00:00:01:10"
[[neighbor]]
address = "10.10.2.11"
mac = "02:00:00:00:02:11"
[[service]]
vip = "10.10.1.100:80"
protocol = "tcp"
scheduler = "rr"
local_addresses = ["10.10.2.1"]
[[service.backend]]
address = "10.10.2.11:8080"
"#;

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let p = std::env::temp_dir().join(format!("sluice-replay-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tcp(
    l2: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    flags: &str,
    ack: Option<u32>,
    data: &[u8],
) -> Vec<u8> {
    let mut s = Seg::between((src.0, src.1).into(), (dst.0, dst.1).into()).seq(seq).data(data);
    if flags.contains('S') {
        s = s.syn();
    }
    if flags.contains('F') {
        s = s.fin();
    }
    if let Some(a) = ack {
        s = s.ack(a);
    }
    s.frame(l2.0, l2.1)
}

fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (ts_us, f) in frames {
        w.write_packet(&PcapPacket::new(Duration::from_micros(*ts_us), f.len() as u32, f)).unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// The capture: the client's SYN, ACK and request on p0; the server's SYN-ACK and response on
/// p1 (the first LIP port of worker 0 is 1024, so the capture can name it).
fn captures(d: &Dir) {
    let (c, vip, lip, rs) =
        (([10, 10, 1, 10], 40000), ([10, 10, 1, 100], 80), ([10, 10, 2, 1], 1024), ([10, 10, 2, 11], 8080));
    let base = 1_700_000_000_000_000u64;
    write_pcap(
        &d.path("client.pcap"),
        &[
            (base, tcp((CLIENT, P0), c, vip, 100, "S", None, b"")),
            (base + 2000, tcp((CLIENT, P0), c, vip, 101, "", Some(5001), b"")),
            (base + 3000, tcp((CLIENT, P0), c, vip, 101, "", Some(5001), b"GET / HTTP/1.1\r\n\r\n")),
        ],
    );
    write_pcap(
        &d.path("server.pcap"),
        &[
            (base + 1000, tcp((RS, P1), rs, lip, 5000, "S", Some(101), b"")),
            (base + 4000, tcp((RS, P1), rs, lip, 5001, "", Some(119), b"HTTP/1.1 200 OK\r\n\r\nhello")),
        ],
    );
    std::fs::write(d.path("sluice.toml"), CONFIG).unwrap();
}

fn replay(d: &Dir, tag: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", "--config"])
        .arg(d.path("sluice.toml"))
        .arg("--in")
        .arg(format!("p0={}", d.path("client.pcap").display()))
        .arg("--in")
        .arg(format!("p1={}", d.path("server.pcap").display()))
        .arg("--out")
        .arg(format!("p0={}", d.path(&format!("{tag}-p0.pcap")).display()))
        .arg("--out")
        .arg(format!("p1={}", d.path(&format!("{tag}-p1.pcap")).display()))
        .arg("--stats-json")
        .arg(d.path(&format!("{tag}-stats.json")))
        .output()
        .unwrap()
}

#[test]
fn a_handshake_to_a_vip_reaches_the_server_from_a_lip_and_replays_identically() {
    let d = Dir::new("hs");
    captures(&d);
    let out = replay(&d, "a");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let to_server = read_pcap(&d.path("a-p1.pcap"));
    assert_eq!(to_server.len(), 3, "SYN, ACK and request reach the server");
    for f in &to_server {
        checksums(f).unwrap();
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!() };
        assert_eq!(ip.header().source_addr().octets(), [10, 10, 2, 1], "source is the LIP");
        assert_eq!(ip.header().destination_addr().octets(), [10, 10, 2, 11], "destination is the backend");
        let Some(TransportSlice::Tcp(t)) = &p.transport else { panic!() };
        assert_eq!((t.source_port(), t.destination_port()), (1024, 8080));
        assert_eq!(&f[..6], &RS);
    }
    let to_client = read_pcap(&d.path("a-p0.pcap"));
    assert_eq!(to_client.len(), 2, "SYN-ACK and response reach the client");
    for f in &to_client {
        checksums(f).unwrap();
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!() };
        assert_eq!(ip.header().source_addr().octets(), [10, 10, 1, 100], "from the VIP");
    }
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path("a-stats.json")).unwrap()).unwrap();
    assert_eq!(stats["flows"]["total"], 1);
    assert_eq!(stats["flows"]["flows"][0]["location"], "nic", "offloaded after the handshake");
    assert!(stats["stats"]["nic"]["hits"].as_u64().unwrap() >= 2, "the request and response hit the NIC");

    // The same run again: byte-identical outputs.
    let out = replay(&d, "b");
    assert!(out.status.success());
    for f in ["p0.pcap", "p1.pcap", "stats.json"] {
        assert_eq!(
            std::fs::read(d.path(&format!("a-{f}"))).unwrap(),
            std::fs::read(d.path(&format!("b-{f}"))).unwrap(),
            "{f} differs between runs"
        );
    }
}

#[test]
#[ignore = "needs tcpdump (scripts/test-all installs it)"]
fn tcpdump_reads_what_replay_wrote() {
    let d = Dir::new("tcpdump");
    captures(&d);
    let out = replay(&d, "t");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t =
        Command::new("tcpdump").args(["-nn", "-r"]).arg(d.path("t-p1.pcap")).output().expect("tcpdump runs");
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("10.10.2.1.1024 > 10.10.2.11.8080"), "{text}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let d = Dir::new("bad");
    captures(&d);
    for (args, expect) in [
        (vec!["--in".to_string(), "p7=x.pcap".to_string()], "no port \"p7\""),
        (vec!["--in".to_string(), "p0".to_string()], "PORT=FILE"),
        (vec!["--in".to_string(), format!("p0={}", d.path("missing.pcap").display())], "missing.pcap"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["replay", "--config"])
            .arg(d.path("sluice.toml"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// Runs `sluice replay` on `d`'s configuration with `args`.
fn replay_with(d: &Dir, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", "--config"])
        .arg(d.path("sluice.toml"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn no_file_is_overwritten_or_left_half_written() {
    let d = Dir::new("files");
    captures(&d);
    let client = d.path("client.pcap");
    let original = std::fs::read(&client).unwrap();
    let p = |s: &str| d.path(s).display().to_string();

    // An output that is an input (also spelt another way), two outputs naming one file, and
    // stats written over a capture: refused before anything is opened for writing.
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--in".into(),
                format!("p0={}", p("client.pcap")),
                "--out".into(),
                format!("p1={}", p("client.pcap")),
            ],
            "overwrite its own input",
        ),
        (
            vec![
                "--in".into(),
                format!("p0={}", p("client.pcap")),
                "--out".into(),
                format!("p1={}/./client.pcap", d.0.display()),
            ],
            "overwrite its own input",
        ),
        (
            vec![
                "--in".into(),
                format!("p0={}", p("client.pcap")),
                "--out".into(),
                format!("p0={}", p("same.pcap")),
                "--out".into(),
                format!("p1={}", p("same.pcap")),
            ],
            "writes that file too",
        ),
        (
            vec!["--in".into(), format!("p0={}", p("client.pcap")), "--stats-json".into(), p("client.pcap")],
            "capture",
        ),
    ];
    for (args, expect) in cases {
        let out = replay_with(&d, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(std::fs::read(&client).unwrap(), original, "{args:?} changed the input");
        assert!(!d.path("same.pcap").exists(), "{args:?} created an output");
    }

    // A corrupt record in a classic pcap is bad input (exit 2, like a corrupt header), and no
    // empty output is left behind.
    let mut corrupt = original.clone();
    let first_record = 24;
    corrupt[first_record + 8..first_record + 12].copy_from_slice(&u32::MAX.to_le_bytes()); // incl_len
    std::fs::write(d.path("corrupt.pcap"), &corrupt).unwrap();
    let args = vec![
        "--in".to_string(),
        format!("p0={}", p("corrupt.pcap")),
        "--out".into(),
        format!("p1={}", p("never.pcap")),
        "--stats-json".into(),
        p("never.json"),
    ];
    let out = replay_with(&d, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("corrupt.pcap") && err.contains("record 1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!d.path("never.pcap").exists(), "an empty output was left behind");
    assert!(!d.path("never.json").exists());
}

/// [`CONFIG`] with its service forwarding in `mode` (and what the mode needs in place of the
/// LIP), its backend on `port`.
fn config_for(mode: &str, port: u16) -> String {
    let extra = match mode {
        "nat" => "forward = \"nat\"\nnat_gateway = \"10.10.2.254\"",
        "dr" => "forward = \"dr\"",
        _ => "forward = \"tun\"\nlocal_addresses = [\"10.10.2.1\"]",
    };
    CONFIG
        .replace("local_addresses = [\"10.10.2.1\"]", extra)
        .replace("address = \"10.10.2.11:8080\"", &format!("address = \"10.10.2.11:{port}\""))
}

/// The IP packet of a frame (after its 14-byte Ethernet header).
fn ip_of(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

/// Each forwarding mode through the whole appliance: NAT's packets reach the server from the
/// client's own address and its replies leave from the VIP; DR's and TUN's reach the server as
/// the client sent them (TUN inside IP-in-IP from the local address), nothing comes back through
/// the balancer; and a second run writes the same bytes.
#[test]
fn every_forwarding_mode_round_trips_through_replay() {
    let (c, vip) = (([10, 10, 1, 10], 40000), ([10, 10, 1, 100], 80));
    let base = 1_700_000_000_000_000u64;
    for mode in ["nat", "dr", "tun"] {
        let d = Dir::new(mode);
        let rs = ([10, 10, 2, 11], if mode == "nat" { 8080 } else { 80 });
        let client = [
            (base, tcp((CLIENT, P0), c, vip, 100, "S", None, b"")),
            (base + 2000, tcp((CLIENT, P0), c, vip, 101, "", Some(5001), b"")),
            (base + 3000, tcp((CLIENT, P0), c, vip, 101, "", Some(5001), b"GET / HTTP/1.1\r\n\r\n")),
        ];
        write_pcap(&d.path("client.pcap"), &client);
        // Only a NAT server answers through the balancer (to the client's own address).
        let server: Vec<(u64, Vec<u8>)> = if mode == "nat" {
            vec![
                (base + 1000, tcp((RS, P1), rs, c, 5000, "S", Some(101), b"")),
                (base + 4000, tcp((RS, P1), rs, c, 5001, "", Some(119), b"HTTP/1.1 200 OK\r\n\r\nhello")),
            ]
        } else {
            vec![]
        };
        write_pcap(&d.path("server.pcap"), &server);
        std::fs::write(d.path("sluice.toml"), config_for(mode, rs.1)).unwrap();
        let out = replay(&d, "a");
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        let to_server = read_pcap(&d.path("a-p1.pcap"));
        let to_client = read_pcap(&d.path("a-p0.pcap"));
        assert_eq!(to_server.len(), 3, "{mode}: SYN, ACK and request reach the server");
        for (f, (_, sent)) in to_server.iter().zip(&client) {
            checksums(f).unwrap();
            assert_eq!(&f[..6], &RS, "{mode}");
            match mode {
                "nat" => {
                    let p = SlicedPacket::from_ethernet(f).unwrap();
                    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!() };
                    assert_eq!(ip.header().source_addr().octets(), c.0, "the server sees the client");
                    assert_eq!(ip.header().destination_addr().octets(), rs.0);
                }
                "dr" => assert_eq!(ip_of(f), ip_of(sent), "DR: the client's packet, unchanged"),
                _ => {
                    assert_eq!(&ip_of(f)[20..], ip_of(sent), "TUN: the client's packet inside");
                    assert_eq!((ip_of(f)[9], &ip_of(f)[12..20]), (4, &[10, 10, 2, 1, 10, 10, 2, 11][..]));
                }
            }
        }
        if mode == "nat" {
            assert_eq!(to_client.len(), 2, "SYN-ACK and response back through the balancer");
            for f in &to_client {
                checksums(f).unwrap();
                let p = SlicedPacket::from_ethernet(f).unwrap();
                let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!() };
                assert_eq!(ip.header().source_addr().octets(), vip.0, "NAT replies leave from the VIP");
            }
        } else {
            assert!(to_client.is_empty(), "{mode}: the server answers the client directly");
        }
        let stats: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path("a-stats.json")).unwrap()).unwrap();
        let flow = &stats["flows"]["flows"][0];
        assert_eq!(
            (flow["forward"].as_str(), flow["state"].as_str()),
            (Some(mode), Some("ESTABLISHED")),
            "{mode}"
        );
        let out = replay(&d, "b");
        assert!(out.status.success());
        for f in ["p0.pcap", "p1.pcap", "stats.json"] {
            let (a, b) = (d.path(&format!("a-{f}")), d.path(&format!("b-{f}")));
            assert_eq!(
                std::fs::read(a).unwrap(),
                std::fs::read(b).unwrap(),
                "{mode}: {f} differs between runs"
            );
        }
    }
}
