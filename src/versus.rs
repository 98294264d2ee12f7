//! `sluice internal e2e-vs-kernel` (run by `bench/e2e-vs-kernel`): the same load through Sluice
//! and through the kernel's own FullNAT, one after the other on the same topology, and a table
//! of both with the ratio Sluice/kernel.
//!
//! The topology is `src/topo`'s (a client, the appliance's namespace, two real servers behind a
//! bridge). Sluice: `sluice run` in the appliance namespace, the in-process model on the veths.
//! The kernel: the same namespace with the VIP and the LIP as interface addresses, forwarding on,
//! and nftables doing DNAT to the servers (round robin) and SNAT to the LIP, conntrack doing the
//! rest — what this kernel offers in place of IPVS, which it lacks. The loads are wrk (short
//! connections: a new connection per request; long ones: keep-alive, with latency percentiles)
//! and curl (a bulk download and upload). Where Sluice is slower, the daemon's own CPU time and
//! share of a core, read from /proc during the run, says how busy its one thread is.

use crate::topo::{self, FullNat, ns_run};
use anyhow::{Context, bail};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one peer achieved.
#[derive(Clone, Debug, Default)]
struct Figures {
    cps: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    download_mbps: f64,
    upload_mbps: f64,
    cpu_pct: f64,
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
}

fn wrk(ns: &str, args: &VersusArgs, close: bool) -> anyhow::Result<(f64, f64, f64)> {
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
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = f64::from(i32::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100).max(1));
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / hz
}

fn load(
    net: &FullNat,
    args: &VersusArgs,
    dir: &std::path::Path,
    daemon: Option<u32>,
) -> anyhow::Result<Figures> {
    let before = daemon.map(cpu_seconds);
    let t = Instant::now();
    let (cps, _, _) = wrk(&net.client, args, true)?;
    let (rps, p50, p99) = wrk(&net.client, args, false)?;
    let (down, up) = bulk(&net.client, dir, args.megabytes)?;
    let mut f = Figures {
        cps,
        rps,
        p50_ms: p50,
        p99_ms: p99,
        download_mbps: down,
        upload_mbps: up,
        ..Figures::default()
    };
    if let (Some(pid), Some(cpu0)) = (daemon, before) {
        f.cpu_pct = 100.0 * (cpu_seconds(pid) - cpu0) / t.elapsed().as_secs_f64();
    }
    Ok(f)
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
    // Sluice first.
    let socket = dir.join("sluice.sock");
    let mut cfg = net.config(&socket, "127.0.0.1:9100", "rr", &[1, 1], None);
    for lb in ["lb0", "lb1"] {
        let iface = format!("interface = \"{lb}\"");
        cfg = cfg.replacen(&iface, &format!("{iface}\nkind = \"{}\"", args.port_kind), 1);
    }
    std::fs::write(dir.join("sluice.toml"), cfg)?;
    let (pid, log) = net.start_appliance(&me, &dir.join("sluice.toml"))?;
    std::thread::spawn(move || for _ in log {});
    eprintln!("e2e-vs-kernel: loading Sluice...");
    let sluice = load(&net, args, &dir, Some(pid))?;
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    std::thread::sleep(Duration::from_millis(500));
    // Then the kernel on the same wires.
    kernel_fullnat(&net.lb)?;
    eprintln!("e2e-vs-kernel: loading the kernel (nftables DNAT+SNAT, conntrack)...");
    let kernel = load(&net, args, &dir, None)?;
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(table(&sluice, &kernel, args))
}

fn table(s: &Figures, k: &Figures, args: &VersusArgs) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "e2e-vs-kernel: {} s per wrk run, {} connections, {} MB transfers, 2 servers, same namespaces, ports {}",
        args.seconds, args.connections, args.megabytes, args.port_kind
    );
    let _ = writeln!(o, "{:<36} {:>12} {:>12} {:>8}", "figure", "sluice", "kernel", "ratio");
    for (name, a, b) in [
        ("short connections (conn/s)", s.cps, k.cps),
        ("keep-alive requests (req/s)", s.rps, k.rps),
        ("keep-alive latency p50 (ms)", s.p50_ms, k.p50_ms),
        ("keep-alive latency p99 (ms)", s.p99_ms, k.p99_ms),
        ("download (MB/s)", s.download_mbps, k.download_mbps),
        ("upload (MB/s)", s.upload_mbps, k.upload_mbps),
    ] {
        let ratio = if b > 0.0 { a / b } else { 0.0 };
        let _ = writeln!(o, "{name:<36} {a:>12.2} {b:>12.2} {ratio:>8.2}");
    }
    let _ = writeln!(
        o,
        "sluice daemon: {:.0}% of a core during the runs (the NIC model's datapath, its wires and the slow path, one thread)",
        s.cpu_pct
    );
    o
}
