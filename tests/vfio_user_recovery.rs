//! A daemon on vfio-user whose model process dies: it says once that the NIC is lost, shows the
//! fault in `stats` and the metrics, retries with backoff (counting failures apart from
//! recoveries), reconnects when a `sluice sim` comes back on the same socket, and exits with
//! status 1 when the NIC stays lost past `device.give_up_s` or when it is stopped while the
//! NIC is lost, so that systemd's `Restart=on-failure` acts.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `sluice sim` on `socket`, killed when dropped.
struct Sim(Child);

impl Sim {
    fn start(socket: &Path) -> Sim {
        let mut child = Command::new(SLUICE)
            .args(["sim", "--socket"])
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break,
                Some(_) => {}
                None => panic!("sluice sim exited before listening"),
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Sim(child)
    }

    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `sluice run` on vfio-user, its stderr kept.
struct Run {
    child: Child,
    control: PathBuf,
    metrics: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Run {
    fn start(dir: &Path, nic: &Path, give_up_s: u32) -> Run {
        let control = dir.join("ctl.sock");
        let metrics = free_port();
        let config = dir.join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                r#"[device]
transport = "vfio-user"
socket = "{}"
give_up_s = {give_up_s}
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
local_addresses = ["10.10.2.1"]
[[service.backend]]
address = "10.10.2.11:80"
"#,
                nic.display(),
                control.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(SLUICE)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let kept = log.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[daemon] {l}");
                let _ = tx.send(l.clone());
                kept.lock().unwrap().push(l);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(l) if l.starts_with("sluice run: ready") => break,
                _ => assert!(Instant::now() < deadline, "the daemon did not start"),
            }
        }
        Run { child, control, metrics, log }
    }

    fn stats(&self) -> serde_json::Value {
        let out =
            Command::new(SLUICE).args(["stats", "--json", "--socket"]).arg(&self.control).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn metrics(&self) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.metrics)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    /// Waits until `stats` says the device is `state`.
    fn wait_state(&self, state: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let st = self.stats();
            if st["device_state"]["state"] == state {
                return st;
            }
            assert!(Instant::now() < deadline, "the device is not {state}: {}", st["device_state"]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn lines_with(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_daemon_whose_model_dies_shows_the_fault_reconnects_and_gives_up_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let nic = dir.path().join("nic.sock");
    let sim = Sim::start(&nic);
    let mut run = Run::start(dir.path(), &nic, 4);
    assert_eq!(run.stats()["device_state"]["state"], "up");

    // The model dies: the fault is shown, failures are counted, recoveries are not.
    sim.kill();
    let st = run.wait_state("lost", Duration::from_secs(5));
    assert_eq!(st["table"]["recoveries"], 0, "a failed attempt is not a recovery");
    std::thread::sleep(Duration::from_millis(1500));
    let st = run.stats();
    let failures = st["table"]["recovery_failures"].as_u64().unwrap();
    assert!(
        (1..=6).contains(&failures),
        "retried with backoff, not every poll: {failures} failures in 1.5 s"
    );
    assert!(
        st["device_state"]["last_error"].as_str().unwrap().contains("nic.sock"),
        "{}",
        st["device_state"]
    );
    let m = run.metrics();
    assert!(m.contains("\nsluice_device_up 0\n"), "metrics say the device is down");
    assert!(m.contains("\nsluice_flow_table_recoveries_total 0\n"));
    let text = Command::new(SLUICE).args(["stats", "--socket"]).arg(&run.control).output().unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("NIC      LOST for"),
        "sluice stats shows the fault"
    );

    // The model comes back on the same socket: the daemon reconnects and rewrites the table.
    let sim = Sim::start(&nic);
    let st = run.wait_state("up", Duration::from_secs(10));
    assert_eq!(st["table"]["recoveries"], 1, "one recovery, counted once it succeeded");
    assert!(run.metrics().contains("\nsluice_device_up 1\n"));
    assert_eq!(run.lines_with("the NIC was lost"), 1, "the loss is logged once, not per attempt");
    assert_eq!(run.lines_with("the NIC is back"), 1);

    // It dies again and stays away: past give_up_s the daemon exits 1, saying why.
    sim.kill();
    let status = run.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1));
    assert_eq!(run.lines_with("device.give_up_s"), 1, "{:?}", run.log.lock().unwrap());
}

#[test]
fn sigterm_while_the_nic_is_lost_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let nic = dir.path().join("nic.sock");
    let sim = Sim::start(&nic);
    let mut run = Run::start(dir.path(), &nic, 0);
    sim.kill();
    run.wait_state("lost", Duration::from_secs(5));
    assert!(Command::new("kill").args(["-TERM", &run.child.id().to_string()]).status().unwrap().success());
    let status = run.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "a stop while the NIC is lost is not a clean stop");
    assert_eq!(run.lines_with("stopped while the NIC"), 1);
}
