//! The forwarding modes beside FullNAT with real Linux TCP stacks (`forward = "dr"`, `"nat"`
//! and `"tun"`): curl gets 200 through each, 24 MB go each way byte-identical, and captures on the
//! wires of the appliance's ports show the replies taking the path the mode promises.
//!
//! - DR: the servers are on the appliance's L2 segment (the switch behind `lb1`) and hold the
//!   VIP on `lo` with `arp_ignore=1` / `arp_announce=2`, so only the appliance answers ARP for
//!   it; they listen on the VIP. Their replies must reach the client without the appliance, so
//!   the topology has its direct-return variant ([`sluice::topo::FullNat::direct_return`]): a
//!   second wire from the client to the switch and a route on each server to the client over
//!   it. The capture on `c0` (the far end of `lb0`, the appliance's port toward the client)
//!   must see no packet from the VIP, and the capture on `c1` sees them. Both modes are
//!   offloaded after the handshake: the NIC forwards the bulk (Route, Rewrite next hops).
//! - NAT: the servers' default route is the appliance's port address (the service's
//!   `nat_gateway`); they see the client's own address, and their replies cross `lb1` addressed
//!   to the client, unchanged, before the appliance sends them on from the VIP.
//!
//! - TUN: the appliance sends the client's packet inside IPv4-in-IPv4 (IPv6-in-IPv6) from the
//!   service's local address (10.10.2.1, fd00:2::1) to the server, over `lb1`. The kernels
//!   these tests run on may lack the `ipip` and `ip6_tunnel` modules (no `tunl0`, `ip6tnl0`),
//!   so each server runs a userspace decapsulator instead (`tests/e2e/ipip_decap.py`): raw
//!   sockets for protocols 4 and 41 take the outer packets (so the kernel does not answer them
//!   with ICMP protocol unreachable or parameter problem) and the inner packet goes into a TUN
//!   device `vip0` holding the VIPs, where the server's kernel receives it as from `tunl0`.
//!   Replies take the direct-return path, as DR's (for IPv6 too: the client has fd00:2::200 on
//!   `c1`). A capture on each server's `eth0` shows the tunnels' outer addresses with the
//!   client's packet inside, and no ICMP error.

use super::harness::{Appliance, Mode, Wire, have, require_root, topo};
use super::{pattern, sha};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The topology's configuration up to its services, with `services` in their place.
fn with_services(cfg: &str, services: &str) -> String {
    let at = cfg.find("[[service]]").expect("the topology writes services");
    format!("{}{services}", &cfg[..at])
}

/// One TCP service on 10.10.1.100:80 forwarding in `mode` (with `extra` keys) to both servers
/// on port 80.
fn service(mode: &str, extra: &str) -> String {
    let mut s =
        format!("[[service]]\nvip = \"10.10.1.100:80\"\nscheduler = \"rr\"\nforward = \"{mode}\"\n{extra}\n");
    for n in 0..2 {
        let _ = writeln!(s, "[[service.backend]]\naddress = \"{}:80\"", topo::server_v4(n));
    }
    s
}

/// A tcpdump writing what crosses `ifname` in `ns` and matches `filter` to a file, packet by
/// packet; killed when dropped.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(dir: &Path, ns: &str, ifname: &str, filter: &str) -> Capture {
        let file = dir.join(format!("{ns}-{ifname}.pcap"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-i", ifname, "-nn", "-U", "-B", "32768", "-w"])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        // tcpdump says "listening on" once its socket is open: nothing after that is missed.
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while err.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("listening on") {
            line.clear();
        }
        assert!(line.contains("listening on"), "tcpdump on {ifname} in {ns} did not start");
        Capture { child, file }
    }

    /// Stops the capture and returns its packets, one tcpdump line each.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let out = Command::new("tcpdump").args(["-nn", "-r"]).arg(&self.file).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ns(ns: &str, args: &[&str]) {
    let out = Command::new("ip").args(["netns", "exec", ns]).args(args).output().unwrap();
    assert!(out.status.success(), "{ns}: {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// curl from the client; its output.
fn curl(a: &Appliance, args: &[&str]) -> Vec<u8> {
    let mut full = vec!["curl", "-sS", "--max-time", "120"];
    full.extend_from_slice(args);
    let out = a.client(&full);
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A GET to `http://{vip}/` answered 200 by a server that saw the client's own address
/// (`client`, as the server writes it), then 24 MB down and up, byte-identical.
fn client_address_kept_and_24_mb_each_way(a: &Appliance, vip: &str, client: &str) {
    for _ in 0..2 {
        let out =
            a.client(&["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{vip}/")]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{}", String::from_utf8_lossy(&out.stderr));
        let body = String::from_utf8_lossy(&curl(a, &[&format!("http://{vip}/")])).to_string();
        assert!(body.contains(&format!("you are {client}:")), "the server sees the client: {body}");
    }
    let mb = 24_000_000usize;
    let down = curl(a, &[&format!("http://{vip}/bytes/{mb}")]);
    assert_eq!(down.len(), mb);
    assert_eq!(sha(&down), sha(&pattern(mb)), "download byte-identical");
    let file = a.dir.join("upload.bin");
    let data: Vec<u8> = (0..mb).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let up = curl(
        a,
        &[
            "--data-binary",
            &format!("@{}", file.display()),
            "-H",
            "Content-Type: application/octet-stream",
            &format!("http://{vip}/sink"),
        ],
    );
    let reply = String::from_utf8_lossy(&up);
    assert!(
        reply.contains(&format!("received {mb} bytes sha256 {}", sha(&data))),
        "upload byte-identical: {reply}"
    );
}

/// Every flow the daemon lists is in `mode`, and the NIC forwarded the bulk.
fn flows_are(a: &Appliance, mode: &str) {
    let flows = a.flows();
    let list = flows["flows"].as_array().unwrap();
    assert!(!list.is_empty(), "the daemon lists the connections");
    assert!(list.iter().all(|f| f["forward"] == mode), "{flows}");
    let hits = a.stats()["nic"]["hits"].as_u64().unwrap();
    assert!(hits > 10_000, "{mode} flows are offloaded: {hits} NIC hits");
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs, curl and tcpdump (scripts/test-all runs it)"]
fn dr_servers_answer_the_client_directly() {
    require_root();
    assert!(have("curl") && have("tcpdump"), "curl and tcpdump are needed (scripts/test-all installs them)");
    let mut a = Appliance::start_edited(
        "sl-mdr",
        2,
        Mode::InProcess(Wire::AfXdp),
        ("rr", &[1, 1], None, ""),
        &|cfg| with_services(&cfg, &service("dr", "")),
    );
    a.net.direct_return().expect("the direct return path");
    for (n, rs) in a.net.servers.clone().iter().enumerate() {
        ns(rs, &["ip", "addr", "add", "10.10.1.100/32", "dev", "lo"]);
        ns(rs, &["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1"]);
        ns(rs, &["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_announce=2"]);
        let name = format!("rs{}", n + 1);
        let args = ["internal", "http-server", "--listen", "10.10.1.100:80", "--name", &name];
        a.net.topo.spawn(rs, super::harness::SLUICE, &args, true).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let to_client = Capture::start(&a.dir, &a.net.client, "c0", "tcp and src host 10.10.1.100");
    let direct = Capture::start(&a.dir, &a.net.client, "c1", "tcp and src host 10.10.1.100");
    client_address_kept_and_24_mb_each_way(&a, "10.10.1.100", topo::CLIENT_V4);
    flows_are(&a, "dr");
    let (through_lb, direct) = (to_client.stop(), direct.stop());
    eprintln!(
        "DR: {} server packets on the direct path, {} through the appliance",
        direct.len(),
        through_lb.len()
    );
    assert!(
        through_lb.is_empty(),
        "no server packet crossed the appliance: {:?}",
        &through_lb[..through_lb.len().min(3)]
    );
    // A capture may drop packets under load (its count is a floor); none through lb0 is exact.
    assert!(direct.len() > 1000, "the replies came over the direct path: {}", direct.len());
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs, curl and tcpdump (scripts/test-all runs it)"]
fn nat_replies_come_back_through_the_appliance_with_the_client_address() {
    require_root();
    assert!(have("curl") && have("tcpdump"), "curl and tcpdump are needed (scripts/test-all installs them)");
    let a = Appliance::start_edited(
        "sl-mnat",
        2,
        Mode::InProcess(Wire::AfXdp),
        ("rr", &[1, 1], None, ""),
        &|cfg| with_services(&cfg, &service("nat", "nat_gateway = \"10.10.2.254\"")),
    );
    for rs in &a.net.servers {
        ns(rs, &["ip", "route", "add", "default", "via", "10.10.2.254"]);
    }
    // What the servers send toward the appliance's lb1, and what the appliance sends the client.
    let from_servers =
        Capture::start(&a.dir, &a.net.sw, "sw-lb", "tcp and src net 10.10.2.0/24 and dst host 10.10.1.10");
    let to_client = Capture::start(&a.dir, &a.net.client, "c0", "tcp and src host 10.10.1.100");
    client_address_kept_and_24_mb_each_way(&a, "10.10.1.100", topo::CLIENT_V4);
    flows_are(&a, "nat");
    let stats = a.stats();
    let (from_servers, to_client) = (from_servers.stop(), to_client.stop());
    eprintln!(
        "NAT: {} server packets into lb1 to the client, {} from the VIP out of lb0, {} NIC hits",
        from_servers.len(),
        to_client.len(),
        stats["nic"]["hits"]
    );
    assert!(from_servers.len() > 1000, "the servers' replies crossed lb1: {}", from_servers.len());
    assert!(
        from_servers.iter().all(|l| l.contains(" > 10.10.1.10.")),
        "addressed to the client, unchanged: {:?}",
        from_servers.iter().find(|l| !l.contains(" > 10.10.1.10."))
    );
    assert!(to_client.len() > 1000, "and left lb0 from the VIP: {}", to_client.len());
}

/// The userspace decapsulator the TUN test's servers run in place of `tunl0` / `ip6tnl0`.
const DECAP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/ipip_decap.py");

/// The client's IPv6 address on the servers' segment (the direct-return wire `c1`).
const CLIENT_DIRECT_V6: &str = "fd00:2::200";

/// Makes server namespace `rs` a TUN real server without the kernel's `ipip` and `ip6_tunnel`
/// modules: a TUN device `vip0` holding both VIPs, reverse-path filtering off (the client's
/// packets come in on `vip0`, the route back to it leaves by `eth0`), routes to the client over
/// the direct-return wire, and `ipip_decap.py` feeding `vip0` with what arrives IPv4-in-IPv4 or
/// IPv6-in-IPv6 (started, and waited for until it says it is ready; it dies with the topology).
fn tun_server(a: &mut Appliance, rs: &str) {
    ns(rs, &["ip", "tuntap", "add", "dev", "vip0", "mode", "tun"]);
    ns(rs, &["ip", "addr", "add", "10.10.1.100/32", "dev", "vip0"]);
    ns(rs, &["ip", "-6", "addr", "add", "fd00:1::100/128", "dev", "vip0", "nodad"]);
    ns(rs, &["ip", "link", "set", "vip0", "up"]);
    for key in ["all", "default", "eth0", "vip0"] {
        ns(rs, &["sysctl", "-q", "-w", &format!("net.ipv4.conf.{key}.rp_filter=0")]);
    }
    ns(rs, &["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1"]);
    ns(rs, &["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_announce=2"]);
    // The client's segments get an outer header on the way (20 bytes, 40 for IPv6): the server
    // advertises an MSS that leaves room for it within lb1's 1500-byte MTU (the appliance drops
    // what would not fit, as `over_mtu`), as TUN real servers are set up.
    let route = [topo::CLIENT_V4, "/32"].concat();
    ns(rs, &["ip", "route", "change", &route, "via", topo::CLIENT_DIRECT_V4, "advmss", "1440"]);
    let route = [topo::CLIENT_V6, "/128"].concat();
    ns(rs, &["ip", "-6", "route", "add", &route, "via", CLIENT_DIRECT_V6, "advmss", "1400"]);
    let mut child = Command::new("ip")
        .args(["netns", "exec", rs, "python3", DECAP, "vip0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 ipip_decap.py");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    a.net.topo.adopt(child);
    assert_eq!(line.trim(), "ready", "ipip_decap.py in {rs} did not start");
}

/// The packets of a server's capture on `eth0` with `outer` before them (the tunnel's
/// addresses, then the client's), checked to have `inner` in them (the VIP's port), and more
/// than a handful.
fn tunnelled(server: usize, lines: &[String], outer: &str, inner: &str) -> usize {
    let ours = lines.iter().filter(|l| l.contains(outer)).count();
    assert!(ours > 10, "server {server} received the client's packets in the tunnel {outer:?}: {lines:?}");
    assert!(
        lines.iter().filter(|l| l.contains(outer)).all(|l| l.contains(inner)),
        "server {server}: the client's packet to the VIP inside {outer:?}: {:?}",
        lines.iter().find(|l| l.contains(outer) && !l.contains(inner))
    );
    ours
}

#[test]
#[ignore = "needs root: network namespaces, veth pairs and TUN devices, curl, tcpdump and python3 (scripts/test-all runs it)"]
fn tun_servers_decapsulate_and_answer_the_client_directly() {
    require_root();
    assert!(
        have("curl") && have("tcpdump") && have("python3"),
        "curl, tcpdump and python3 are needed (scripts/test-all installs them)"
    );
    let mut services = service("tun", "local_addresses = [\"10.10.2.1\"]");
    services.push_str(
        "[[service]]\nvip = \"[fd00:1::100]:80\"\nscheduler = \"rr\"\nforward = \"tun\"\n\
         local_addresses = [\"fd00:2::1\"]\n",
    );
    for n in 0..2 {
        let _ = writeln!(services, "[[service.backend]]\naddress = \"[{}]:80\"", topo::server_v6(n));
    }
    let mut a = Appliance::start_edited(
        "sl-mtun",
        2,
        Mode::InProcess(Wire::AfXdp),
        ("rr", &[1, 1], None, ""),
        &|cfg| with_services(&cfg, &services),
    );
    a.net.direct_return().expect("the direct return path");
    let c1 = [CLIENT_DIRECT_V6, "/64"].concat();
    ns(&a.net.client, &["ip", "-6", "addr", "add", &c1, "dev", "c1", "nodad"]);
    for (n, rs) in a.net.servers.clone().iter().enumerate() {
        tun_server(&mut a, rs);
        let name = format!("rs{}", n + 1);
        for listen in ["10.10.1.100:80", "[fd00:1::100]:80"] {
            let args = ["internal", "http-server", "--listen", listen, "--name", &name];
            a.net.topo.spawn(rs, super::harness::SLUICE, &args, true).unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let servers = a.net.servers.clone();
    // What reaches each server: the tunnels' packets, and any ICMP error it sends or receives
    // (ICMPv6 types 1 to 4; neighbour discovery is not one).
    let filter = "ip proto 4 or icmp or ip6 proto 41 or (icmp6 and ip6[40] >= 1 and ip6[40] <= 4)";
    let arrived: Vec<Capture> = servers.iter().map(|rs| Capture::start(&a.dir, rs, "eth0", filter)).collect();
    let from_vip = "tcp and (src host 10.10.1.100 or src host fd00:1::100)";
    let to_client = Capture::start(&a.dir, &a.net.client, "c0", from_vip);
    let direct = Capture::start(&a.dir, &a.net.client, "c1", from_vip);
    client_address_kept_and_24_mb_each_way(&a, "10.10.1.100", topo::CLIENT_V4);
    client_address_kept_and_24_mb_each_way(&a, "[fd00:1::100]", &format!("[{}]", topo::CLIENT_V6));
    flows_are(&a, "tun");
    let stats = a.stats();
    let (through_lb, direct) = (to_client.stop(), direct.stop());
    let arrived: Vec<Vec<String>> = arrived.into_iter().map(Capture::stop).collect();
    let mut counts = Vec::new();
    for (n, lines) in arrived.iter().enumerate() {
        // Outer: the service's local address to the server; inner: the client to the VIP.
        let v4 = format!(" IP 10.10.2.1 > {}: IP {}.", topo::server_v4(n), topo::CLIENT_V4);
        let v6 = format!(" IP6 fd00:2::1 > {}: IP6 {}.", topo::server_v6(n), topo::CLIENT_V6);
        counts.push((
            tunnelled(n + 1, lines, &v4, " > 10.10.1.100.80: "),
            tunnelled(n + 1, lines, &v6, " > fd00:1::100.80: "),
        ));
        assert!(
            lines.iter().all(|l| l.contains(&v4) || l.contains(&v6)),
            "server {}: nothing but the two tunnels' packets, no ICMP: {:?}",
            n + 1,
            lines.iter().find(|l| !(l.contains(&v4) || l.contains(&v6)))
        );
    }
    eprintln!(
        "TUN: {counts:?} IPv4-in-IPv4 and IPv6-in-IPv6 packets at the servers, {} server packets on the \
         direct path, {} through the appliance, {} NIC hits",
        direct.len(),
        through_lb.len(),
        stats["nic"]["hits"]
    );
    assert!(
        counts.iter().map(|c| c.0).sum::<usize>() > 1000 && counts.iter().map(|c| c.1).sum::<usize>() > 1000,
        "the uploads crossed the tunnels: {counts:?}"
    );
    // The servers' MSS left room for the outer header: nothing was dropped for the MTU.
    assert_eq!(stats["punts"]["over_mtu"], 0, "NIC punts over the MTU: {stats}");
    assert_eq!(stats["slowpath_drops"]["over_mtu"], 0, "host-path drops over the MTU: {stats}");
    assert!(
        through_lb.is_empty(),
        "no server packet crossed the appliance: {:?}",
        &through_lb[..through_lb.len().min(3)]
    );
    assert!(direct.len() > 2000, "the replies came over the direct path: {}", direct.len());
}
