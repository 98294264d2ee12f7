//! Two Sluice nodes behind a router that runs BIRD (BGP, BFD, ECMP with an L4 hash): new
//! connections spread over both nodes; a VIP whose servers are all down is withdrawn; after
//! `kill -9` of one node, new connections reach the other one, and the time that takes is
//! measured and printed.
//!
//! ```text
//!  {p}-c            {p}-rt (BIRD, multipath)      {p}-n1 / {p}-n2 (sluice + BIRD)   {p}-sw      {p}-r1, {p}-r2
//!  c0 10.10.1.10 ── rt-c 10.10.1.254
//!                   rt-n1 10.10.3.254 ───────── lb0 (p0, sl-p0 10.10.3.1)  lb1 ── br0 ── eth0 10.10.2.11
//!                   rt-n2 10.10.4.254 ───────── lb0 (p0, sl-p0 10.10.4.1)  lb1 ──┘   └── eth0 10.10.2.12
//! ```
//!
//! VIP 10.99.0.100:80; node N's LIP is 10.10.2.N, its port p1 address 10.10.2.25N. The nodes
//! sync their connections to each other over that network (`[sync]`), each announcing the
//! other's LIP as a backup route; `sync_scenario.rs` kills one in the middle of
//! downloads and keep-alive connections. Both nodes
//! are AS 65001, the router AS 65000 with `check link off` (a router behind a switch does not
//! see a node's link go down: BFD must notice), and the client has `net.core.txrehash = 0`
//! (else a retried SYN is rehashed onto the other path by chance, hiding the failover time).

use sluice::topo::{self, Topology, ns_run, veth, wait_up};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// One cluster at a time: two topologies of BIRD, BFD at 100 ms x 3 and two daemons each on a
/// 2-core machine starve each other's BFD and the measured failover is the machine's, not
/// Sluice's (seen: 3 s of failed connections next to the other test, 0.2 s alone).
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_cluster_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const VIP: &str = "10.99.0.100:80";

/// Runs `f` on a thread inside namespace `ns` (so sockets it opens live there).
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(move || {
            let nsf = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: setns on a namespace file we opened; it changes this scoped thread only.
            assert_eq!(unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

/// One HTTP GET to the VIP with a fresh connection (a new source port, so a new ECMP hash);
/// `Ok` with the body's first word (the server's name) or `Err` saying why.
fn get(connect_timeout: Duration) -> Result<String, String> {
    let vip: SocketAddr = VIP.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&vip, connect_timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| format!("read: {e}"))?;
    let body = text.split("\r\n\r\n").nth(1).ok_or("no body")?;
    Ok(body.split(':').next().unwrap_or("").to_string())
}

struct Cluster {
    topo: Topology,
    dir: tempfile::TempDir,
    client: String,
    router: String,
    nodes: Vec<String>,
    servers: Vec<String>,
    pids: Vec<u32>,
}

impl Cluster {
    fn build(prefix: &str) -> Cluster {
        assert!(topo::is_root(), "needs root (network namespaces)");
        assert!(
            Command::new("bird").arg("--version").output().is_ok(),
            "bird is not installed (apt-get install bird2)"
        );
        let mut t = Topology::new(prefix).expect("namespaces");
        let client = t.namespace("c").unwrap();
        let router = t.namespace("rt").unwrap();
        let sw = t.namespace("sw").unwrap();
        let nodes = vec![t.namespace("n1").unwrap(), t.namespace("n2").unwrap()];
        let servers = vec![t.namespace("r1").unwrap(), t.namespace("r2").unwrap()];
        veth(&client, "c0", &router, "rt-c").unwrap();
        ns_run(&client, &["ip", "addr", "add", "10.10.1.10/24", "dev", "c0"]).unwrap();
        ns_run(&client, &["ip", "route", "add", "default", "via", "10.10.1.254"]).unwrap();
        ns_run(&client, &["sysctl", "-q", "-w", "net.core.txrehash=0"]).unwrap();
        ns_run(&router, &["ip", "addr", "add", "10.10.1.254/24", "dev", "rt-c"]).unwrap();
        for s in ["net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1"] {
            ns_run(&router, &["sysctl", "-q", "-w", s]).unwrap();
        }
        topo::switch(&sw, "br0").unwrap();
        let mut wires = vec![(client.clone(), "c0".to_string())];
        for (i, n) in nodes.iter().enumerate() {
            let rt_if = format!("rt-n{}", i + 1);
            veth(&router, &rt_if, n, "lb0").unwrap();
            ns_run(&router, &["ip", "addr", "add", &format!("10.10.{}.254/24", i + 3), "dev", &rt_if])
                .unwrap();
            let sw_if = format!("sw-n{}", i + 1);
            veth(n, "lb1", &sw, &sw_if).unwrap();
            ns_run(&sw, &["ip", "link", "set", &sw_if, "master", "br0"]).unwrap();
            for ifname in ["lb0", "lb1"] {
                ns_run(n, &["sysctl", "-q", "-w", &format!("net.ipv4.conf.{ifname}.arp_ignore=8")]).unwrap();
                ns_run(n, &["sysctl", "-q", "-w", &format!("net.ipv6.conf.{ifname}.disable_ipv6=1")])
                    .unwrap();
                wires.push((n.clone(), ifname.to_string()));
            }
        }
        for (i, r) in servers.iter().enumerate() {
            let sw_if = format!("sw-r{}", i + 1);
            veth(r, "eth0", &sw, &sw_if).unwrap();
            ns_run(&sw, &["ip", "link", "set", &sw_if, "master", "br0"]).unwrap();
            ns_run(r, &["ip", "addr", "add", &format!("10.10.2.{}/24", 11 + i), "dev", "eth0"]).unwrap();
            wires.push((r.clone(), "eth0".to_string()));
        }
        for (ns, ifname) in &wires {
            wait_up(ns, ifname).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster { topo: t, dir, client, router, nodes, servers, pids: Vec::new() };
        for n in 0..2 {
            c.start_server(n);
        }
        c.start_router_bird();
        for n in 0..2 {
            c.start_node(n);
        }
        c
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_server(&mut self, n: usize) {
        let (ns, listen, name) =
            (self.servers[n].clone(), format!("10.10.2.{}:80", 11 + n), format!("rs{}", n + 1));
        self.topo
            .spawn(&ns, SLUICE, &["internal", "http-server", "--listen", &listen, "--name", &name], true)
            .unwrap();
    }

    fn kill_server(&self, n: usize) {
        let out = Command::new("ip").args(["netns", "pids", &self.servers[n]]).output().unwrap();
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }

    /// Starts BIRD in `ns` with `conf` and waits for its control socket.
    fn bird(&mut self, ns: &str, name: &str, conf: &str) -> PathBuf {
        let (cfg, sock) = (self.path(&format!("{name}.conf")), self.path(&format!("{name}.ctl")));
        std::fs::write(&cfg, conf).unwrap();
        let out = Command::new("bird").args(["-p", "-c"]).arg(&cfg).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let (c, s) = (cfg.display().to_string(), sock.display().to_string());
        self.topo.spawn(ns, "bird", &["-f", "-c", &c, "-s", &s, "-P", &format!("{s}.pid")], false).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "{name}: BIRD did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        sock
    }

    fn start_router_bird(&mut self) {
        let conf = r#"router id 10.10.1.254;
log stderr all;
protocol device { scan time 1; }
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
protocol bfd { interface "*" { interval 100 ms; multiplier 3; }; }
template bgp node {
  local as 65000; hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;
  bfd on; check link off;
  ipv4 { import all; export none; };
}
protocol bgp n1 from node { neighbor 10.10.3.1 as 65001; }
protocol bgp n2 from node { neighbor 10.10.4.1 as 65001; }
"#;
        let router = self.router.clone();
        self.bird(&router, "router", conf);
    }

    fn start_node(&mut self, n: usize) {
        let ns = self.nodes[n].clone();
        let (name, inc_dir) = (format!("n{}", n + 1), self.path(&format!("n{}-bird", n + 1)));
        std::fs::create_dir_all(&inc_dir).unwrap();
        let bird_conf = format!(
            "router id 10.10.{}.1;\nlog stderr all;\nprotocol device {{ scan time 1; }}\ninclude \"{}/*.conf\";\n",
            n + 3,
            inc_dir.display()
        );
        let sock = self.bird(&ns, &format!("{name}-bird"), &bird_conf);
        let cfg = format!(
            r#"[device]
transport = "sim"
[control]
socket = "{ctl}"
[[port]]
name = "p0"
interface = "lb0"
kind = "af_packet"
addresses = ["10.10.{net}.1/24"]
[[port]]
name = "p1"
interface = "lb1"
kind = "af_packet"
addresses = ["10.10.2.25{id}/24"]
[[route]]
prefix = "0.0.0.0/0"
via = "10.10.{net}.254"
[[service]]
vip = "{VIP}"
scheduler = "rr"
local_addresses = ["10.10.2.{id}"]
health = {{ kind = "tcp", interval_ms = 100, timeout_ms = 100, rise = 1, fall = 2 }}
[[service.backend]]
address = "10.10.2.11:80"
[[service.backend]]
address = "10.10.2.12:80"
[[probe]]
name = "vip"
target = "{VIP}"
check = {{ kind = "http", path = "/", interval_ms = 200, timeout_ms = 200, rise = 1, fall = 2 }}
[routing]
bird_socket = "{sock}"
include_file = "{inc}/sluice.conf"
asn = 65001
[[routing.peer]]
address = "10.10.{net}.254"
asn = 65000
[sync]
[[sync.peer]]
address = "10.10.2.25{peer}"
lips = ["10.10.2.{peer}"]
"#,
            ctl = self.path(&format!("{name}.sock")).display(),
            net = n + 3,
            id = n + 1,
            peer = 2 - n,
            sock = sock.display(),
            inc = inc_dir.display(),
        );
        let cfg_path = self.path(&format!("{name}.toml"));
        std::fs::write(&cfg_path, cfg).unwrap();
        self.spawn_daemon(n);
    }

    /// Starts node `n`'s daemon on the configuration `start_node` wrote (again, after a kill:
    /// its BIRD keeps running) and waits until it is ready.
    fn spawn_daemon(&mut self, n: usize) {
        let (ns, name) = (self.nodes[n].clone(), format!("n{}", n + 1));
        let cfg_path = self.path(&format!("{name}.toml"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, SLUICE, "run", "--config"])
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // pids[n] is node n's daemon (nodes start in order; a restart replaces its entry).
        if n < self.pids.len() {
            self.pids[n] = child.id();
        } else {
            self.pids.push(child.id());
        }
        let stderr = child.stderr.take().unwrap();
        self.topo.adopt(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {l}");
                let _ = tx.send(l);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let l = rx.recv_timeout(Duration::from_millis(100));
            if l.as_ref().is_ok_and(|l| l.starts_with("sluice run: ready")) {
                return;
            }
            assert!(Instant::now() < deadline, "node {n} did not start");
        }
    }

    /// The router's next hops for `prefix` (empty when it has no route).
    fn next_hops(&self, prefix: &str) -> Vec<String> {
        let out = Command::new("ip").args(["-n", &self.router, "route", "show", prefix]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let w: Vec<&str> = text.split_whitespace().collect();
        w.windows(2).filter(|p| p[0] == "via").map(|p| p[1].to_string()).collect()
    }

    fn wait_hops(&self, prefix: &str, want: usize, within: Duration) -> Duration {
        let t0 = Instant::now();
        while self.next_hops(prefix).len() != want {
            assert!(
                t0.elapsed() < within,
                "router: {prefix} has next hops {:?}, not {want}, after {within:?}",
                self.next_hops(prefix)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        t0.elapsed()
    }

    /// `sluice CMD --json` against node `n`.
    fn ask(&self, n: usize, cmd: &str) -> serde_json::Value {
        let sock = self.path(&format!("n{}.sock", n + 1));
        let out = Command::new(SLUICE).args([cmd, "--json", "--socket"]).arg(&sock).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn total_connections(&self, n: usize) -> u64 {
        self.ask(n, "services")["services"][0]["total_connections"].as_u64().unwrap()
    }
}

/// Whether node `n`'s BGP session shows as established in `sluice cluster` (BIRD's state is
/// refreshed every second: waits up to 5 s).
fn established(c: &Cluster, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let up = c.ask(n, "cluster")["protocols"].as_array().unwrap().iter().any(|p| {
            p["name"] == "sluice_peer0" && p["info"].as_str().unwrap_or("").starts_with("Established")
        });
        if up || Instant::now() > deadline {
            return up;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root: network namespaces, veths and BIRD (bird2); scripts/test-all runs it"]
fn two_nodes_behind_bird_spread_withdraw_and_fail_over() {
    let _alone = one_cluster_at_a_time();
    let mut c = Cluster::build("slcl");
    c.wait_hops("10.99.0.100", 2, Duration::from_secs(30));
    for n in 0..2 {
        assert!(established(&c, n), "node {n}: {}", c.ask(n, "cluster"));
        // Each node's LIP is announced: replies from servers behind a router find their node.
        assert_eq!(c.next_hops(&format!("10.10.2.{}", n + 1)), vec![format!("10.10.{}.1", n + 3)]);
    }
    let text = Command::new(SLUICE).args(["cluster", "--socket"]).arg(c.path("n1.sock")).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    eprintln!("sluice cluster (n1):\n{text}");
    assert!(text.contains("10.99.0.100/32") && text.contains("sluice_peer0"), "{text}");

    // Each node's probe reaches the VIP end to end, through the router, as a client would: the
    // host's own routing table sends it (an operator gives the host a route to the VIPs via the
    // router on the client-side port's host interface).
    for n in 0..2 {
        let via = format!("10.10.{}.254", n + 3);
        let ok = Command::new("ip")
            .args(["netns", "exec", &c.nodes[n], "ip", "route", "replace", "10.99.0.0/24", "via", &via])
            .status()
            .unwrap();
        assert!(ok.success(), "a host route to the VIPs on node {n}");
    }
    for n in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probes = c.ask(n, "services")["probes"].clone();
            if probes[0]["up"] == true && probes[0]["last"] == "HTTP 200" {
                eprintln!("node {n}'s probe: {probes}");
                break;
            }
            assert!(Instant::now() < deadline, "node {n}'s probe of the VIP: {probes}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // New connections spread over both nodes (the router hashes on ports).
    // The probes' own connections (one per check, to either node) are counted apart.
    let probe_checks = |c: &Cluster| -> u64 {
        (0..2).map(|n| c.ask(n, "services")["probes"][0]["checks"].as_u64().unwrap_or(0)).sum()
    };
    let (before, probes_before) = ([c.total_connections(0), c.total_connections(1)], probe_checks(&c));
    let results = in_ns(&c.client, || (0..100).map(|_| get(Duration::from_secs(2))).collect::<Vec<_>>());
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let spread = [c.total_connections(0) - before[0], c.total_connections(1) - before[1]];
    let probed = probe_checks(&c) - probes_before;
    eprintln!(
        "spread of 100 new connections: node 1 {}, node 2 {} ({probed} probe checks among them)",
        spread[0], spread[1]
    );
    let total = spread[0] + spread[1];
    assert!(
        (100..=100 + probed + 2).contains(&total),
        "{total} connections for 100 and {probed} probe checks"
    );
    assert!(spread.iter().all(|&s| s >= 20), "{spread:?}");

    // Every server down: both nodes withdraw the VIP (not their LIPs); back up: announced again.
    let t0 = Instant::now();
    c.kill_server(0);
    c.kill_server(1);
    c.wait_hops("10.99.0.100", 0, Duration::from_secs(5));
    eprintln!("VIP withdrawn {:?} after its last server died (health: 100 ms x 2)", t0.elapsed());
    assert_eq!(c.next_hops("10.10.2.1").len(), 1);
    c.start_server(0);
    c.start_server(1);
    c.wait_hops("10.99.0.100", 2, Duration::from_secs(5));

    // kill -9 of node 1: new connections reach node 2. Attempts every few milliseconds, each
    // with a fresh source port and 100 ms to connect; the failover time is when the last
    // failing attempt started (every later one succeeded), from the kill.
    let kill_at = Instant::now();
    assert!(Command::new("kill").args(["-9", &c.pids[0].to_string()]).status().unwrap().success());
    let (attempts, withdrawn) = std::thread::scope(|s| {
        // The router's view, beside the client's: when its route loses node 1.
        let watch = s.spawn(|| {
            while c.next_hops("10.99.0.100").len() > 1 && kill_at.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(2));
            }
            kill_at.elapsed()
        });
        let attempts = in_ns(&c.client, || {
            let mut v = Vec::new();
            while kill_at.elapsed() < Duration::from_secs(3) {
                let at = kill_at.elapsed();
                v.push((at, get(Duration::from_millis(100))));
                std::thread::sleep(Duration::from_millis(5));
            }
            v
        });
        (attempts, watch.join().unwrap())
    });
    let last_fail = attempts.iter().filter(|(_, r)| r.is_err()).map(|(at, _)| *at).max();
    let fails = attempts.iter().filter(|(_, r)| r.is_err()).count();
    let failover = last_fail.map_or(Duration::ZERO, |t| t + Duration::from_millis(5));
    eprintln!(
        "kill -9 of node 1: {} new connections tried in 3 s, {fails} failed; every one from {:?} after the kill on \
         reached node 2; the router withdrew node 1's route {:?} after the kill (BFD 100 ms x 3)",
        attempts.len(),
        failover,
        withdrawn
    );
    assert_eq!(c.next_hops("10.99.0.100"), vec!["10.10.4.1".to_string()]);
    assert!(failover < Duration::from_secs(1), "failover took {failover:?}");
    assert!(attempts.iter().filter(|(at, r)| *at > failover && r.is_ok()).count() > 20);
    let ok_after = in_ns(&c.client, || (0..20).flat_map(|_| get(Duration::from_secs(1))).count());
    assert_eq!(ok_after, 20);
}

mod soak;
mod sync_scenario;
