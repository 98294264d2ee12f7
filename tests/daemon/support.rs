//! A `sluice run` on the in-process model for the integration tests: started on a scratch
//! configuration (no interfaces, no host interfaces, so no root), driven through the CLI,
//! killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn config_text(socket: &Path, metrics: u16, extra_backend: bool) -> String {
    let mut s = format!(
        r#"[device]
workers = 2
[control]
socket = "{}"
metrics = "127.0.0.1:{metrics}"
[host]
tap = false
[[port]]
name = "p0"
addresses = ["10.10.1.1/24"]
[[port]]
name = "p1"
addresses = ["10.10.2.254/24"]
[[service]]
vip = "10.10.1.100:80"
protocol = "tcp"
scheduler = "wrr"
local_addresses = ["10.10.2.1"]
[[service.backend]]
address = "10.10.2.11:80"
weight = 1
"#,
        socket.display()
    );
    if extra_backend {
        s.push_str("[[service.backend]]\naddress = \"10.10.2.12:80\"\nweight = 4\n");
    }
    s
}

pub struct Daemon {
    pub child: Child,
    // Kept for its Drop: the directory goes with the daemon.
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub metrics: u16,
}

impl Daemon {
    pub fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sluice.sock");
        let metrics = free_port();
        let config = dir.path().join("sluice.toml");
        std::fs::write(&config, config_text(&socket, metrics, false)).unwrap();
        let mut child = Command::new(SLUICE)
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[daemon] {l}");
                let _ = tx.send(l);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(l) if l.starts_with("sluice run: ready") => break,
                _ => assert!(Instant::now() < deadline, "the daemon did not start"),
            }
        }
        Daemon { child, _dir: dir, socket, config, metrics }
    }

    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(SLUICE).args(args).arg("--socket").arg(&self.socket).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "sluice {}: {err}", args.join(" "));
        out
    }

    pub fn services_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["services", "--json"])).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
