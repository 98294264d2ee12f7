//! The end-to-end harness: a FullNAT topology of namespaces (see `src/topo`), the appliance
//! started in it (`sluice run`, in-process model on the veths, or `sluice sim` + `sluice run
//! --transport vfio-user`), real servers, and helpers to run the client's commands and ask the
//! daemon over its control socket. Everything is removed when the `Appliance` is dropped.

pub use sluice::topo;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// Fails, saying why, when not root or when iproute2 is missing: the tests are ignored by
/// default and run by `scripts/test-all` as root, so a missing prerequisite is a failure.
pub fn require_root() {
    assert!(topo::is_root(), "end-to-end tests need root (network namespaces)");
    assert!(
        Command::new("ip").arg("-V").output().is_ok(),
        "iproute2 is not installed (scripts/test-all installs it)"
    );
}

pub fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// What the model's ports attach to the veths with (`[[port]] kind`, `--port …,kind=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wire {
    /// AF_XDP sockets and an XDP program on each veth (what `auto` picks where it can).
    AfXdp,
    /// AF_PACKET sockets with TPACKET_V3 rings (the fallback).
    AfPacket,
}

impl Wire {
    pub fn kind(self) -> &'static str {
        match self {
            Wire::AfXdp => "af_xdp",
            Wire::AfPacket => "af_packet",
        }
    }
}

/// How the appliance reaches its NIC, and how the NIC's ports reach the veths.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// `sluice run` with the in-process model attached to the veths.
    InProcess(Wire),
    /// `sluice sim --port p0=lb0,kind=… --port p1=lb1,kind=…` and `sluice run --transport
    /// vfio-user`.
    VfioUser(Wire),
}

pub struct Appliance {
    pub net: topo::FullNat,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Appliance {
    /// Builds the topology with `servers` servers running the internal HTTP and UDP echo
    /// servers, writes the configuration (`extra` appended; keys under a leading `[service]`
    /// line join the first service (TCP :80), then `[device]` keys join the device table) and
    /// starts the appliance.
    pub fn start(
        prefix: &str,
        servers: usize,
        mode: Mode,
        scheduler: &str,
        weights: &[u32],
        health: Option<&str>,
        extra: &str,
    ) -> Appliance {
        Self::start_edited(prefix, servers, mode, (scheduler, weights, health, extra), &|cfg| cfg)
    }

    /// [`Self::start`] with the configuration passed through `edit` before it is written (a
    /// test that needs services of its own replaces the topology's).
    pub fn start_edited(
        prefix: &str,
        servers: usize,
        mode: Mode,
        (scheduler, weights, health, extra): (&str, &[u32], Option<&str>, &str),
        edit: &dyn Fn(String) -> String,
    ) -> Appliance {
        let net = topo::FullNat::build(prefix, servers).expect("build the namespaces");
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("sluice.sock");
        let mut cfg = net.config(&socket, "127.0.0.1:9100", scheduler, weights, health);
        let (Mode::InProcess(wire) | Mode::VfioUser(wire)) = mode;
        // An explicit kind: a port that cannot have it stops the daemon, so no silent fallback
        // hides a broken wire.
        for lb in ["lb0", "lb1"] {
            let iface = format!("interface = \"{lb}\"");
            cfg = cfg.replacen(&iface, &format!("{iface}\nkind = \"{}\"", wire.kind()), 1);
        }
        if matches!(mode, Mode::VfioUser(_)) {
            // Over vfio-user the driver sleeps on the rings' MSI-X eventfds (`interrupts`); the
            // in-process runs busy-poll: both modes are exercised end to end.
            cfg = cfg.replacen(
                "transport = \"sim\"",
                &format!(
                    "transport = \"sim\"\nsocket = \"{}\"\ninterrupts = true",
                    dir.join("nic.sock").display()
                ),
                1,
            );
        }
        // Keys for the first service (under `[service]`, first in `extra`) join it.
        let extra = match extra.strip_prefix("[service]\n") {
            Some(rest) => {
                let (keys, tail) = rest.split_once("\n[").map_or((rest, ""), |(k, t)| (k, t));
                cfg = cfg.replacen("[[service]]\n", &format!("[[service]]\n{keys}\n"), 1);
                if tail.is_empty() { String::new() } else { format!("[{tail}") }
            }
            None => extra.to_string(),
        };
        // Keys for `[device]` (written first in `extra`, under its header) join the table the
        // topology wrote; the rest is appended.
        match extra.strip_prefix("[device]\n") {
            Some(rest) => {
                let (keys, tail) = rest.split_once("\n[").map_or((rest, ""), |(k, t)| (k, t));
                cfg = cfg.replacen("[device]\n", &format!("[device]\n{keys}\n"), 1);
                if !tail.is_empty() {
                    cfg.push_str("\n[");
                    cfg.push_str(tail);
                }
            }
            None => cfg.push_str(&extra),
        }
        let cfg = edit(cfg);
        let config = dir.join("sluice.toml");
        std::fs::write(&config, &cfg).unwrap();
        let mut a = Appliance { net, dir, socket, config, log: std::sync::Arc::default() };
        for n in 0..servers {
            a.start_server(n);
        }
        if matches!(mode, Mode::VfioUser(_)) {
            let nic = a.dir.join("nic.sock").display().to_string();
            let lb = a.net.lb.clone();
            let (p0, p1) = (format!("p0=lb0,kind={}", wire.kind()), format!("p1=lb1,kind={}", wire.kind()));
            a.spawn_logged(
                &lb,
                &["sim", "--socket", &nic, "--port", &p0, "--port", &p1],
                "sluice sim: listening on",
            );
            let cfg_path = a.config.display().to_string();
            a.spawn_logged(
                &lb,
                &["run", "--config", &cfg_path, "--transport", "vfio-user"],
                "sluice run: ready",
            );
        } else {
            let (lb, cfg_path) = (a.net.lb.clone(), a.config.display().to_string());
            a.spawn_logged(&lb, &["run", "--config", &cfg_path], "sluice run: ready");
        }
        a
    }

    /// Kills the daemon (`sluice run`) with SIGKILL and starts it again on the same
    /// configuration over vfio-user, as `systemctl restart` after a crash would; the model
    /// (`sluice sim`) keeps running.
    pub fn restart_daemon_hard(&mut self) {
        let cfg_path = self.config.display().to_string();
        let pattern = format!("run --config {cfg_path}");
        let out = Command::new("pgrep").args(["-f", &pattern]).output().unwrap();
        let pids = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!pids.trim().is_empty(), "no daemon running");
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let lb = self.net.lb.clone();
        self.spawn_logged(
            &lb,
            &["run", "--config", &cfg_path, "--transport", "vfio-user"],
            "sluice run: ready",
        );
    }

    /// Runs `args` in the client's namespace in the background.
    pub fn client_spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new("ip")
            .args(["netns", "exec", &self.net.client])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Lines the appliance's processes logged so far that hold `needle`.
    pub fn logged(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// Starts server `n`'s HTTP (IPv4 and IPv6) and UDP echo servers.
    pub fn start_server(&mut self, n: usize) {
        let ns = self.net.servers[n].clone();
        let name = format!("rs{}", n + 1);
        for listen in [format!("{}:80", topo::server_v4(n)), format!("[{}]:80", topo::server_v6(n))] {
            self.net
                .topo
                .spawn(&ns, SLUICE, &["internal", "http-server", "--listen", &listen, "--name", &name], true)
                .unwrap();
        }
        let udp = format!("{}:53", topo::server_v4(n));
        self.net
            .topo
            .spawn(&ns, SLUICE, &["internal", "udp-echo", "--listen", &udp, "--name", &name], true)
            .unwrap();
        // The servers listen once their process runs; give them a moment.
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Kills server `n`'s processes (a server that died).
    pub fn kill_server(&self, n: usize) {
        let ns = &self.net.servers[n];
        let _ = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").arg("-9").arg(pid).status();
            }
        });
    }

    fn spawn_logged(&mut self, ns: &str, args: &[&str], ready: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, SLUICE])
            .args(args)
            .env("RUST_LOG", std::env::var("SLUICE_E2E_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        let stderr = child.stderr.take().unwrap();
        self.net.topo.adopt(child);
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[appliance] {line}");
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.starts_with(ready) => return,
                Ok(_) => {}
                Err(_) => assert!(
                    Instant::now() < deadline,
                    "no {ready:?} within 30 s; log: {:?}",
                    self.log.lock().unwrap()
                ),
            }
        }
    }

    /// Runs a command in the client's namespace.
    pub fn client(&self, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.net.client]).args(args).output().unwrap()
    }

    /// `sluice internal http-get URL --count N` from the client; the answer lines.
    pub fn get(&self, url: &str, count: u32) -> Vec<String> {
        let out = self.client(&[SLUICE, "internal", "http-get", url, "--count", &count.to_string()]);
        assert!(out.status.success(), "http-get {url}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    /// One request to the daemon's control socket.
    pub fn ask(&self, req: &serde_json::Value) -> serde_json::Value {
        let mut s = UnixStream::connect(&self.socket).expect("control socket");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        writeln!(s, "{req}").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], true, "{req}: {v}");
        v["data"].clone()
    }

    pub fn stats(&self) -> serde_json::Value {
        self.ask(&serde_json::json!({"cmd": "stats"}))
    }

    pub fn flows(&self) -> serde_json::Value {
        self.ask(&serde_json::json!({"cmd": "flows"}))
    }

    /// Waits until `f` holds, up to `secs`.
    pub fn wait_for(&self, secs: u64, what: &str, mut f: impl FnMut(&Appliance) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            assert!(Instant::now() < deadline, "{what}: not within {secs} s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
