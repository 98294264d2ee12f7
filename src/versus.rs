//! `sluice internal e2e-vs-kernel` (run by `bench/e2e-vs-kernel`): the same load through Sluice
//! and through the kernel's own FullNAT on the same topology, alternating (kernel, Sluice,
//! kernel, Sluice, … `--rounds` of each), and a table of both, medians with ranges, and the ratio
//! Sluice/kernel of the medians.
//!
//! The topology is `src/topo`'s (a client, the appliance's namespace, two real servers behind a
//! bridge). Sluice: `sluice run` in the appliance namespace, the in-process model on the veths.
//! The kernel: the same namespace with the VIP and the LIP as interface addresses, forwarding on,
//! and nftables doing DNAT to the servers (round robin) and SNAT to the LIP, conntrack doing the
//! rest — what this kernel offers in place of IPVS, which it lacks. The loads are wrk (short
//! connections: a new connection per request; long ones: keep-alive, with latency percentiles)
//! and curl (a bulk download and upload). The CPU each side spent is measured per phase: the
//! kernel's softirq time from /proc/stat (the kernel's NAT runs there, and so does every veth's
//! receive, for both sides), plus for Sluice the daemon's own time from /proc/PID/stat; it is
//! given per connection (the short-connection run) and per MB (the transfers).

use crate::topo::{self, FullNat, ns_run};
use anyhow::{Context, bail};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one peer achieved in one round.
#[derive(Clone, Debug, Default)]
struct Figures {
    cps: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    download_mbps: f64,
    upload_mbps: f64,
    /// CPU (softirq, plus the daemon's for Sluice) per connection of the short-connection run.
    cpu_us_per_conn: f64,
    /// CPU (softirq, plus the daemon's for Sluice) per MB of the transfers.
    cpu_ms_per_mb: f64,
    /// The daemon's share of a core over the round (Sluice only).
    daemon_pct: f64,
}

/// The comparison's options.
#[derive(clap::Args, Debug)]
pub struct VersusArgs {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u32,
    /// Concurrent connections of the wrk runs.
    #[arg(long, default_value_t = 50)]
    pub connections: u32,
    /// Megabytes of the bulk transfers.
    #[arg(long, default_value_t = 100)]
    pub megabytes: u32,
    /// How the model's ports attach to the veths: auto, af_xdp or af_packet (`[[port]] kind`).
    #[arg(long, default_value = "auto", value_parser = ["auto", "af_xdp", "af_packet"])]
    pub port_kind: String,
    /// Rounds of each side, alternating kernel and Sluice (at least 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// Run the model's datapath in the slow path's loop (`[device] datapath_thread = false`)
    /// even on a host with four or more CPUs.
    #[arg(long)]
    pub one_thread: bool,
    /// The client's and the servers' side receive as hosts of their own would: GRO on and a
    /// NAPI thread on the interfaces facing the appliance (`c0`, `sw-lb`), for both sides alike,
    /// so their stacks' receive work does not run in the transmitter's softirq (on the default
    /// topology it runs inside the daemon's transmit for Sluice, and inside the sender's for the
    /// kernel).
    #[arg(long)]
    pub peers_threaded: bool,
}

pub(crate) fn wrk(ns: &str, args: &VersusArgs, close: bool) -> anyhow::Result<(f64, f64, f64)> {
    let secs = format!("{}s", args.seconds);
    let conns = args.connections.to_string();
    let mut cmd = vec![
        "ip",
        "netns",
        "exec",
        ns,
        "wrk",
        "-t2",
        "-c",
        &conns,
        "-d",
        &secs,
        "--timeout",
        "5s",
        "--latency",
    ];
    if close {
        cmd.extend(["-H", "Connection: close"]);
    }
    cmd.push("http://10.10.1.100/");
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("wrk said: {text}"))?;
    let pct = |p: &str| -> f64 {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .and_then(|l| l.split_whitespace().nth(1))
            .map_or(0.0, duration_ms)
    };
    Ok((rps, pct("50%"), pct("99%")))
}

/// wrk's "1.23ms", "45.00us", "1.02s" in milliseconds.
fn duration_ms(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(0.0);
    match unit {
        "us" => v / 1000.0,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => v,
    }
}

fn bulk(ns: &str, dir: &std::path::Path, mb: u32) -> anyhow::Result<(f64, f64)> {
    let bytes = mb as usize * 1_000_000;
    let t = Instant::now();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "--max-time",
            "120",
            &format!("http://10.10.1.100/bytes/{bytes}"),
        ])
        .output()?;
    if !out.status.success() {
        bail!("download: {}", String::from_utf8_lossy(&out.stderr));
    }
    let down = f64::from(mb) / t.elapsed().as_secs_f64();
    let file = dir.join("upload.bin");
    std::fs::write(&file, vec![0x5Au8; bytes])?;
    let t = Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "-o", "/dev/null", "--max-time", "120", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .args(["-H", "Content-Type: application/octet-stream", "http://10.10.1.100/sink"])
        .output()?;
    if !out.status.success() {
        bail!("upload: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((down, f64::from(mb) / t.elapsed().as_secs_f64()))
}

/// CPU seconds a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| f.get(i)?.parse::<f64>().ok()).sum();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u32::try_from(hz).ok().filter(|&h| h > 0).map_or(100.0, f64::from)
}

/// Softirq CPU seconds of every CPU so far (/proc/stat's seventh column).
fn softirq_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: f64 = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .and_then(|l| l.split_whitespace().nth(7))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    ticks / clock_ticks()
}

/// CPU seconds the side has spent so far: softirq, plus the daemon's when there is one.
fn side_cpu(daemon: Option<u32>) -> f64 {
    softirq_seconds() + daemon.map_or(0.0, cpu_seconds)
}

fn load(
    net: &FullNat,
    args: &VersusArgs,
    dir: &std::path::Path,
    daemon: Option<u32>,
) -> anyhow::Result<Figures> {
    let t = Instant::now();
    let daemon0 = daemon.map(cpu_seconds);
    let cpu0 = side_cpu(daemon);
    let (cps, _, _) = wrk(&net.client, args, true)?;
    let cpu1 = side_cpu(daemon);
    let (rps, p50, p99) = wrk(&net.client, args, false)?;
    let cpu2 = side_cpu(daemon);
    let (down, up) = bulk(&net.client, dir, args.megabytes)?;
    let cpu3 = side_cpu(daemon);
    let connections = cps * f64::from(args.seconds);
    let mut f = Figures {
        cps,
        rps,
        p50_ms: p50,
        p99_ms: p99,
        download_mbps: down,
        upload_mbps: up,
        cpu_us_per_conn: if connections > 0.0 { 1e6 * (cpu1 - cpu0) / connections } else { 0.0 },
        cpu_ms_per_mb: 1e3 * (cpu3 - cpu2) / (2.0 * f64::from(args.megabytes)),
        ..Figures::default()
    };
    if let (Some(pid), Some(d0)) = (daemon, daemon0) {
        f.daemon_pct = 100.0 * (cpu_seconds(pid) - d0) / t.elapsed().as_secs_f64();
    }
    Ok(f)
}

/// Undoes [`kernel_fullnat`]: the namespace as the topology left it for Sluice.
fn kernel_fullnat_off(lb: &str) -> anyhow::Result<()> {
    let _ = ns_run(lb, &["nft", "delete", "table", "ip", "sluice_peer"]);
    let _ = ns_run(lb, &["ip", "addr", "del", "10.10.1.100/24", "dev", "lb0"]);
    let _ = ns_run(lb, &["ip", "addr", "del", "10.10.2.1/24", "dev", "lb1"]);
    ns_run(lb, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])?;
    for ifname in ["lb0", "lb1"] {
        ns_run(lb, &["sysctl", "-q", "-w", &format!("net.ipv4.conf.{ifname}.arp_ignore=8")])?;
    }
    // Neighbours learnt for the kernel's addresses must not answer for Sluice's round.
    let _ = ns_run(lb, &["ip", "neigh", "flush", "all"]);
    Ok(())
}

fn kernel_fullnat(lb: &str) -> anyhow::Result<()> {
    for ifname in ["lb0", "lb1"] {
        ns_run(lb, &["sysctl", "-q", "-w", &format!("net.ipv4.conf.{ifname}.arp_ignore=0")])?;
    }
    ns_run(lb, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
    ns_run(lb, &["ip", "addr", "add", "10.10.1.100/24", "dev", "lb0"])?;
    ns_run(lb, &["ip", "addr", "add", "10.10.2.1/24", "dev", "lb1"])?;
    let rules = "table ip sluice_peer {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr 10.10.1.100 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 10.10.2.11, 1 : 10.10.2.12 }
  }
  chain post {
    type nat hook postrouting priority srcnat;
    oifname \"lb1\" ip daddr 10.10.2.0/24 snat to 10.10.2.1
  }
}
";
    let mut nft =
        Command::new("ip").args(["netns", "exec", lb, "nft", "-f", "-"]).stdin(Stdio::piped()).spawn()?;
    std::io::Write::write_all(nft.stdin.as_mut().context("nft stdin")?, rules.as_bytes())?;
    if !nft.wait()?.success() {
        bail!("nft refused the DNAT/SNAT rules");
    }
    Ok(())
}

/// Runs the comparison and returns the table.
pub fn run(args: &VersusArgs) -> anyhow::Result<String> {
    if !topo::is_root() {
        bail!("the comparison builds network namespaces: run it as root");
    }
    for tool in ["wrk", "curl", "nft"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            bail!("{tool} is missing: apt-get install wrk curl nftables (./scripts/test-all installs them)");
        }
    }
    let me = std::env::current_exe()?.display().to_string();
    let dir = std::env::temp_dir().join(format!("sluice-versus-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut net = FullNat::build("sl-vs", 2)?;
    net.start_servers(&me, false)?;
    if args.peers_threaded {
        // The interfaces that receive from the appliance's wires, for both sides alike.
        for (ns, ifname) in [(&net.client, "c0"), (&net.sw, "sw-lb")] {
            topo::receive_on_own_thread(ns, ifname)?;
        }
    }
    let socket = dir.join("sluice.sock");
    let mut cfg = net.config(&socket, "127.0.0.1:9100", "rr", &[1, 1], None);
    for lb in ["lb0", "lb1"] {
        let iface = format!("interface = \"{lb}\"");
        cfg = cfg.replacen(&iface, &format!("{iface}\nkind = \"{}\"", args.port_kind), 1);
    }
    if args.one_thread {
        cfg = cfg.replacen("[device]", "[device]\ndatapath_thread = false", 1);
    }
    std::fs::write(dir.join("sluice.toml"), cfg)?;
    let (mut sluice, mut kernel) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        kernel_fullnat(&net.lb)?;
        eprintln!(
            "e2e-vs-kernel: round {round}/{}: the kernel (nftables DNAT+SNAT, conntrack)...",
            args.rounds
        );
        kernel.push(load(&net, args, &dir, None)?);
        kernel_fullnat_off(&net.lb)?;
        let (pid, log) = net.start_appliance(&me, &dir.join("sluice.toml"))?;
        std::thread::spawn(move || for _ in log {});
        eprintln!("e2e-vs-kernel: round {round}/{}: Sluice...", args.rounds);
        let figures = load(&net, args, &dir, Some(pid));
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        std::thread::sleep(Duration::from_millis(500));
        sluice.push(figures?);
    }
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(table(&sluice, &kernel, args))
}

/// Median and range of one figure over the rounds.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let median = if v.is_empty() { 0.0 } else { v[v.len() / 2] };
    (median, v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0))
}

/// A row of the table: its name and how to read the figure.
type Row = (&'static str, fn(&Figures) -> f64);

fn table(s: &[Figures], k: &[Figures], args: &VersusArgs) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "e2e-vs-kernel: {} round(s) of each, alternating (kernel first), {} s per wrk run, {} connections, \
         {} MB transfers, 2 servers, same namespaces, ports {}, datapath {}{}",
        args.rounds,
        args.seconds,
        args.connections,
        args.megabytes,
        args.port_kind,
        if args.one_thread || std::thread::available_parallelism().map_or(1, std::num::NonZero::get) < 4 {
            "in the slow path's loop"
        } else {
            "on its own thread"
        },
        if args.peers_threaded { ", peers receiving on NAPI threads (GRO on)" } else { "" }
    );
    let _ = writeln!(o, "{:<34} {:>24} {:>24} {:>7}", "figure (median, range)", "sluice", "kernel", "ratio");
    let rows: [Row; 8] = [
        ("short connections (conn/s)", |f| f.cps),
        ("keep-alive requests (req/s)", |f| f.rps),
        ("keep-alive latency p50 (ms)", |f| f.p50_ms),
        ("keep-alive latency p99 (ms)", |f| f.p99_ms),
        ("download (MB/s)", |f| f.download_mbps),
        ("upload (MB/s)", |f| f.upload_mbps),
        ("CPU per connection (us)", |f| f.cpu_us_per_conn),
        ("CPU per MB transferred (ms)", |f| f.cpu_ms_per_mb),
    ];
    for (name, get) in rows {
        let (sm, slo, shi) = spread(&s.iter().map(get).collect::<Vec<_>>());
        let (km, klo, khi) = spread(&k.iter().map(get).collect::<Vec<_>>());
        let ratio = if km > 0.0 { sm / km } else { 0.0 };
        let cell = |m: f64, lo: f64, hi: f64| format!("{m:.2} ({lo:.2}-{hi:.2})");
        let _ = writeln!(o, "{name:<34} {:>24} {:>24} {ratio:>7.2}", cell(sm, slo, shi), cell(km, klo, khi));
    }
    let (pct, lo, hi) = spread(&s.iter().map(|f| f.daemon_pct).collect::<Vec<_>>());
    let _ = writeln!(
        o,
        "sluice daemon: {pct:.0}% of a core (range {lo:.0}-{hi:.0}%) over its rounds (datapath, slow path, wires); \
         CPU figures are softirq time of all CPUs (veth receive and the kernel's NAT, both sides) plus the daemon's"
    );
    o
}
