//! Network-namespace topologies for the demo, the end-to-end tests and the benchmarks: a
//! client, the appliance and real servers on their own network stacks, joined by veth pairs
//! and a bridge, with addresses only inside the namespaces made here.
//!
//! ```text
//!  {p}-c            {p}-lb                         {p}-sw            {p}-r1 .. {p}-rN
//!  c0 10.10.1.10 ── lb0 (model p0)  lb1 (model p1) ── sw-lb ─ br0 ─ sw-rN ── eth0 10.10.2.1N
//!                   sl-p0 10.10.1.1 (TAP, kernel)       (bridge)
//!                   sl-p1 10.10.2.254
//! ```
//!
//! The appliance's veths belong to the model as a wire belongs to a NIC: no addresses, ARP
//! ignored, IPv6 off. Every veth has its offloads off (checksums complete, no segmentation or
//! coalescing) so frames are what a wire carries; that is done here with the ethtool ioctl
//! in the namespace, so nothing beyond iproute2 is needed. The bridge is a switch and nothing
//! more ([`switch`]: no br_netfilter hooks on what it forwards). A [`Topology`] removes everything it
//! made when dropped (also when a test panics), and removes leftovers of an earlier crashed run
//! with the same prefix before it builds.

use std::fmt::Write as _;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

/// Whether this process may build topologies (root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run(args: &[&str]) -> io::Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// Runs a command in a namespace and waits for it.
pub fn ns_run(ns: &str, args: &[&str]) -> io::Result<()> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// The namespaces with names starting `prefix-`.
fn existing(prefix: &str) -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

/// Namespaces and processes, removed on drop.
pub struct Topology {
    /// The prefix of every namespace's name.
    pub prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Topology {
    /// An empty topology; leftovers of an earlier run with this prefix are removed first.
    ///
    /// `SLUICE_NS_TAG`, when set, is appended to the prefix, so two checkouts can run their
    /// namespace tests side by side on one machine without removing each other's namespaces.
    pub fn new(prefix: &str) -> io::Result<Topology> {
        if !is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "network namespaces need root"));
        }
        let tagged = match std::env::var("SLUICE_NS_TAG") {
            Ok(tag) if !tag.is_empty() => format!("{prefix}{tag}"),
            _ => prefix.to_string(),
        };
        let prefix = tagged.as_str();
        for ns in existing(prefix) {
            let _ = run(&["ip", "netns", "del", &ns]);
        }
        Ok(Topology { prefix: prefix.to_string(), namespaces: Vec::new(), children: Vec::new() })
    }

    /// Creates namespace `{prefix}-{name}` with its loopback up; returns its full name.
    pub fn namespace(&mut self, name: &str) -> io::Result<String> {
        let ns = format!("{}-{name}", self.prefix);
        run(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        ns_run(&ns, &["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Starts a process in a namespace; it is killed when the topology is dropped.
    pub fn spawn(&mut self, ns: &str, program: &str, args: &[&str], quiet: bool) -> io::Result<&mut Child> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]).args(args).stdin(Stdio::null());
        if quiet {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = c.spawn()?;
        self.children.push(child);
        Ok(self.children.last_mut().expect("just pushed"))
    }

    /// Adopts a child started elsewhere, so it dies with the topology.
    pub fn adopt(&mut self, child: Child) {
        self.children.push(child);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = run(&["ip", "netns", "del", &ns]);
        }
    }
}

/// A veth pair between two namespaces, both ends up with offloads off.
pub fn veth(a_ns: &str, a: &str, b_ns: &str, b: &str) -> io::Result<()> {
    run(&["ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns])?;
    for (ns, ifname) in [(a_ns, a), (b_ns, b)] {
        offloads_off(ns, ifname)?;
        ns_run(ns, &["ip", "link", "set", ifname, "up"])?;
    }
    Ok(())
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    pad: [u8; 16],
}

/// Turns off rx/tx checksum offload, scatter-gather, TSO, GSO and GRO on `ifname` in namespace
/// `ns` (what `ethtool -K IF rx off tx off sg off tso off gso off gro off` does).
pub fn offloads_off(ns: &str, ifname: &str) -> io::Result<()> {
    // ETHTOOL_SRXCSUM, STXCSUM, SSG, STSO, SGSO, SGRO.
    ethtool_set(ns, ifname, &[(0x15, 0), (0x17, 0), (0x19, 0), (0x1f, 0), (0x24, 0), (0x2c, 0)])
}

/// Makes `ifname` in `ns` receive as a host's own NIC would: GRO on (which gives a veth a NAPI
/// instance of its own) and that NAPI run by a kernel thread (`/sys/class/net/IF/threaded`),
/// so the receive work of the stack behind it runs where the scheduler puts that thread, not
/// in the softirq of whoever transmitted to it.
pub fn receive_on_own_thread(ns: &str, ifname: &str) -> io::Result<()> {
    // ETHTOOL_SGRO.
    ethtool_set(ns, ifname, &[(0x2c, 1)])?;
    ns_run(ns, &["sh", "-c", &format!("echo 1 > /sys/class/net/{ifname}/threaded")])
}

/// Applies `(ETHTOOL_S* command, value)` settings to `ifname` in namespace `ns` (the ethtool
/// ioctl, from a thread that enters the namespace, so no ethtool binary is needed).
fn ethtool_set(ns: &str, ifname: &str, settings: &[(u32, u32)]) -> io::Result<()> {
    let settings = settings.to_vec();
    let ns_path = format!("/var/run/netns/{ns}");
    let ifname = ifname.to_string();
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<()> {
            let nsf = std::fs::File::open(&ns_path)?;
            // SAFETY: setns on a namespace file descriptor we opened; it changes the network
            // namespace of this (scoped, short-lived) thread only.
            if unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a plain datagram socket; checked below.
            let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if sock < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `sock` is the descriptor we just created and own.
            let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sock) };
            for (cmd, data) in settings {
                let mut v = EthtoolValue { cmd, data };
                let mut req = IfReqData { name: [0; libc::IFNAMSIZ], data: &raw mut v, pad: [0; 16] };
                for (d, c) in req.name.iter_mut().zip(ifname.bytes().take(libc::IFNAMSIZ - 1)) {
                    *d = libc::c_char::from_ne_bytes([c]);
                }
                // SAFETY: SIOCETHTOOL reads an ifreq whose data points at an ethtool_value;
                // both live for the call.
                let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &raw mut req) };
                if rc != 0 {
                    let e = io::Error::last_os_error();
                    // A feature the device cannot change is fine (veth's GRO off is default).
                    if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                        return Err(io::Error::other(format!("ethtool {cmd:#x} on {ifname}: {e}")));
                    }
                }
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("offloads thread panicked")))
    })
}

/// Waits (up to 5 s) until `ifname` in `ns` reports its link up.
pub fn wait_up(ns: &str, ifname: &str) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = Command::new("ip").args(["-n", ns, "-o", "link", "show", ifname]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("state UP") && text.contains("LOWER_UP") {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(io::Error::other(format!("{ifname} in {ns} did not come up: {}", text.trim())));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The standard FullNAT topology: a client, the appliance, a switch and `servers` real servers.
pub struct FullNat {
    /// Everything made.
    pub topo: Topology,
    /// The client's namespace.
    pub client: String,
    /// The appliance's namespace (its wires are `lb0` toward the client, `lb1` toward the servers).
    pub lb: String,
    /// The servers' namespaces, in order (server `n` is 10.10.2.(11+n), fd00:2::(11+n)).
    pub servers: Vec<String>,
    /// The switch between the appliance's `lb1` (its port there is `sw-lb`) and the servers.
    pub sw: String,
}

/// The client's address on the servers' segment in [`FullNat::direct_return`].
pub const CLIENT_DIRECT_V4: &str = "10.10.2.200";

/// The client's address.
pub const CLIENT_V4: &str = "10.10.1.10";
/// The client's IPv6 address.
pub const CLIENT_V6: &str = "fd00:1::10";

/// Server `n`'s IPv4 address.
pub fn server_v4(n: usize) -> String {
    format!("10.10.2.{}", 11 + n)
}

/// Server `n`'s IPv6 address.
pub fn server_v6(n: usize) -> String {
    format!("fd00:2::{:x}", 0x11 + n)
}

/// Makes bridge `name` in namespace `ns`, up: the switch between the appliance and its servers.
/// A switch forwards frames and nothing more: where the kernel has br_netfilter, bridged IPv4,
/// IPv6 and ARP would otherwise also go through the namespace's netfilter hooks (a route lookup
/// and a hook walk per frame, whoever sends it), work no switch does. Those hooks are turned off
/// in this namespace only (the keys are per namespace since Linux 5.3). Where the module is
/// absent, or the kernel keeps the keys in the initial namespace alone, the namespace has no
/// such keys, the write fails, and nothing outside the namespace is touched.
pub fn switch(ns: &str, name: &str) -> io::Result<()> {
    for family in ["iptables", "ip6tables", "arptables"] {
        let _ = ns_run(ns, &["sysctl", "-q", "-w", &format!("net.bridge.bridge-nf-call-{family}=0")]);
    }
    ns_run(ns, &["ip", "link", "add", name, "type", "bridge", "mcast_snooping", "0"])?;
    ns_run(ns, &["ip", "link", "set", name, "up"])
}

impl FullNat {
    /// Builds it.
    pub fn build(prefix: &str, servers: usize) -> io::Result<FullNat> {
        let mut topo = Topology::new(prefix)?;
        let client = topo.namespace("c")?;
        let lb = topo.namespace("lb")?;
        let sw = topo.namespace("sw")?;
        veth(&client, "c0", &lb, "lb0")?;
        veth(&lb, "lb1", &sw, "sw-lb")?;
        ns_run(&client, &["ip", "addr", "add", &format!("{CLIENT_V4}/24"), "dev", "c0"])?;
        ns_run(&client, &["ip", "-6", "addr", "add", &format!("{CLIENT_V6}/64"), "dev", "c0", "nodad"])?;
        for ifname in ["lb0", "lb1"] {
            // The wire belongs to the model: the kernel neither answers nor speaks on it.
            ns_run(&lb, &["sysctl", "-q", "-w", &format!("net.ipv4.conf.{ifname}.arp_ignore=8")])?;
            ns_run(&lb, &["sysctl", "-q", "-w", &format!("net.ipv6.conf.{ifname}.disable_ipv6=1")])?;
        }
        switch(&sw, "br0")?;
        ns_run(&sw, &["ip", "link", "set", "sw-lb", "master", "br0"])?;
        let mut names = Vec::new();
        for n in 0..servers {
            let rs = topo.namespace(&format!("r{}", n + 1))?;
            let port = format!("sw-r{}", n + 1);
            veth(&rs, "eth0", &sw, &port)?;
            ns_run(&sw, &["ip", "link", "set", &port, "master", "br0"])?;
            ns_run(&rs, &["ip", "addr", "add", &format!("{}/24", server_v4(n)), "dev", "eth0"])?;
            ns_run(
                &rs,
                &["ip", "-6", "addr", "add", &format!("{}/64", server_v6(n)), "dev", "eth0", "nodad"],
            )?;
            names.push(rs);
        }
        // The kernel reports a veth's carrier (IFF_RUNNING, operstate) through linkwatch, up
        // to a second after both ends are up; the model's ports count frames sent before that as
        // dropped (link down). Wait for every wire to be up before anyone uses it.
        let mut wires =
            vec![(client.clone(), "c0".to_string()), (lb.clone(), "lb0".into()), (lb.clone(), "lb1".into())];
        wires.extend(names.iter().map(|ns| (ns.clone(), "eth0".to_string())));
        for (ns, ifname) in &wires {
            wait_up(ns, ifname)?;
        }
        Ok(FullNat { topo, client, lb, servers: names, sw })
    }

    /// The variant DR and TUN need, where servers answer the client without the appliance: a
    /// second wire from the client (`c1`, 10.10.2.200/24) to the switch, and on every server a
    /// route to the client through it. The client accepts the VIP's answers on `c1` although
    /// it reaches the VIP through `c0` (reverse-path filtering off), as a client beyond a router
    /// would. FullNAT and NAT tests do not use it: their servers have no route to the client.
    pub fn direct_return(&mut self) -> io::Result<()> {
        veth(&self.client, "c1", &self.sw, "sw-c")?;
        ns_run(&self.sw, &["ip", "link", "set", "sw-c", "master", "br0"])?;
        ns_run(&self.client, &["ip", "addr", "add", &format!("{CLIENT_DIRECT_V4}/24"), "dev", "c1"])?;
        for key in ["all", "default", "c0", "c1"] {
            ns_run(&self.client, &["sysctl", "-q", "-w", &format!("net.ipv4.conf.{key}.rp_filter=0")])?;
        }
        for rs in &self.servers {
            ns_run(rs, &["ip", "route", "add", &format!("{CLIENT_V4}/32"), "via", CLIENT_DIRECT_V4])?;
        }
        wait_up(&self.client, "c1")
    }

    /// Starts `sluice internal http-server` on every server (IPv4, and IPv6 with `v6`), each
    /// answering with its name (`rs1`, `rs2`...).
    pub fn start_servers(&mut self, exe: &str, v6: bool) -> io::Result<()> {
        for (n, ns) in self.servers.clone().iter().enumerate() {
            let mut listen = vec![format!("{}:80", server_v4(n))];
            if v6 {
                listen.push(format!("[{}]:80", server_v6(n)));
            }
            for l in listen {
                self.topo.spawn(
                    ns,
                    exe,
                    &["internal", "http-server", "--listen", &l, "--name", &format!("rs{}", n + 1)],
                    true,
                )?;
            }
        }
        Ok(())
    }

    /// Starts `sluice run --config CONFIG` in the appliance's namespace and waits (up to 30 s)
    /// for its ready line. Returns its pid and the rest of its stderr, line by line.
    pub fn start_appliance(
        &mut self,
        exe: &str,
        config: &std::path::Path,
    ) -> io::Result<(u32, std::sync::mpsc::Receiver<String>)> {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.lb, exe, "run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let stderr = child.stderr.take().ok_or_else(|| io::Error::other("no stderr"))?;
        self.topo.adopt(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(l) if l.starts_with("sluice run: ready") => {
                    eprintln!("  {l}");
                    return Ok((pid, rx));
                }
                Ok(l) => eprintln!("  {l}"),
                Err(_) if std::time::Instant::now() > deadline => {
                    return Err(io::Error::other("the appliance did not start within 30 s"));
                }
                Err(_) => {}
            }
        }
    }

    /// The appliance's configuration for this topology (control socket `socket`, metrics on
    /// `metrics`), one TCP service on :80, a UDP one on :53 and an IPv6 one, every server behind
    /// each, with `extra` appended (more keys, health checks...).
    pub fn config(
        &self,
        socket: &std::path::Path,
        metrics: &str,
        scheduler: &str,
        weights: &[u32],
        health: Option<&str>,
    ) -> String {
        let mut s = format!(
            r#"[device]
transport = "sim"
workers = 1
[control]
socket = "{}"
metrics = "{metrics}"
[[port]]
name = "p0"
interface = "lb0"
addresses = ["10.10.1.1/24", "fd00:1::1/64"]
[[port]]
name = "p1"
interface = "lb1"
addresses = ["10.10.2.254/24", "fd00:2::254/64"]
"#,
            socket.display()
        );
        for (vip, proto, port, lips) in [
            ("10.10.1.100:80", "tcp", 80, r#"["10.10.2.1"]"#),
            ("10.10.1.100:53", "udp", 53, r#"["10.10.2.1"]"#),
            ("[fd00:1::100]:80", "tcp", 80, r#"["fd00:2::1"]"#),
        ] {
            let _ = writeln!(
                s,
                "[[service]]\nvip = \"{vip}\"\nprotocol = \"{proto}\"\nscheduler = \"{scheduler}\"\nlocal_addresses = {lips}"
            );
            if let (Some(h), "tcp") = (health, proto) {
                let _ = writeln!(s, "health = {h}");
            }
            for n in 0..self.servers.len() {
                let addr = if vip.starts_with('[') {
                    format!("[{}]:{port}", server_v6(n))
                } else {
                    format!("{}:{port}", server_v4(n))
                };
                let w = weights.get(n).copied().unwrap_or(1);
                let _ = writeln!(s, "[[service.backend]]\naddress = \"{addr}\"\nweight = {w}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `e2e-vs-kernel --peers-threaded` does to a peer: GRO on, its NAPI on a thread.
    #[test]
    #[ignore = "needs root: network namespaces"]
    fn a_peer_receives_on_its_own_napi_thread() {
        let mut t = Topology::new("sl-napi").expect("namespaces");
        let a = t.namespace("a").expect("namespace a");
        let b = t.namespace("b").expect("namespace b");
        veth(&a, "x0", &b, "x1").expect("veth pair");
        let threaded = |ns: &str| {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "cat", "/sys/class/net/x1/threaded"])
                .output()
                .expect("ip netns exec");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(threaded(&b), "0", "a veth's receive runs in the sender's softirq by default");
        receive_on_own_thread(&b, "x1").expect("GRO and a NAPI thread");
        assert_eq!(threaded(&b), "1");
    }
}
