//! `sluice sim` against hostile vfio-user clients: malformed messages end their own session
//! with an error reply and nothing else (the process lives, the socket stays, the next client
//! is served), and a client that arrives while another holds the session is told who holds it
//! instead of waiting.

use host_driver::transport::Transport;
use host_driver::transport::vfio_user::VfioUserTransport;
use rtl_spec::regs::identity;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// vfio-user's header: message id, command, size, flags, error (16 bytes).
fn header(command: u16, size: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    h.extend_from_slice(&7u16.to_le_bytes());
    h.extend_from_slice(&command.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

const VERSION: u16 = 1;
const REGION_READ: u16 = 9;
const REGION_WRITE: u16 = 10;
/// The `error` flag of a reply.
const FLAG_ERROR: u32 = 1 << 5;

struct Sim {
    child: Child,
    dir: PathBuf,
}

impl Sim {
    fn start(tag: &str) -> Sim {
        let dir = std::env::temp_dir().join(format!("sluice-hostile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("nic.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["sim", "--socket"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sluice sim");
        let mut sim = Sim { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&socket).is_err() {
            assert!(sim.child.try_wait().unwrap().is_none(), "sluice sim exited early");
            assert!(Instant::now() < deadline, "sluice sim not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        // That probe connection was a session of its own: wait until the server is free again.
        wait_free(&sim.socket());
        sim
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("nic.sock")
    }

    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "sluice sim died");
        assert!(self.socket().exists(), "sluice sim removed its socket");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until a good client can hold a session (the previous one has been reset).
fn wait_free(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match VfioUserTransport::connect(socket) {
            Ok(t) => {
                drop(t);
                // The server resets the device after the session; a new session is accepted
                // once the accept loop has seen this one end.
                std::thread::sleep(Duration::from_millis(150));
                return;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "no session in 10 s: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Sends `bytes` on a fresh connection and returns the reply header's flags, if one came
/// before the server closed the connection.
fn send_raw(socket: &Path, bytes: &[u8]) -> Option<u32> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("send");
    let mut reply = [0u8; 16];
    match s.read_exact(&mut reply) {
        Ok(()) => Some(u32::from_le_bytes(reply[8..12].try_into().unwrap())),
        Err(_) => None,
    }
}

fn a_good_client_works(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut t = loop {
        match VfioUserTransport::connect(socket) {
            Ok(t) => break t,
            Err(e) => {
                assert!(Instant::now() < deadline, "the next client was not served: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(t.read32(identity::BASE + identity::MAGIC), rtl_spec::MAGIC);
}

#[test]
fn malformed_vfio_user_messages_end_their_session_and_the_next_client_is_served() {
    let mut sim = Sim::start("malformed");
    let socket = sim.socket();
    let mut version_no_nul = header(VERSION, 16 + 4 + 2);
    version_no_nul.extend_from_slice(&[1, 0, 0, 0, b'{', b'}']);
    let mut version_empty = header(VERSION, 16 + 4);
    version_empty.extend_from_slice(&[0, 0, 1, 0]);
    let mut huge_read = header(REGION_READ, 16 + 16);
    huge_read.extend_from_slice(&0u64.to_le_bytes()); // offset
    huge_read.extend_from_slice(&0u32.to_le_bytes()); // region
    huge_read.extend_from_slice(&u32::MAX.to_le_bytes()); // count: 4 GiB
    let mut lying_write = header(REGION_WRITE, 16 + 16 + 4);
    lying_write.extend_from_slice(&0u64.to_le_bytes());
    lying_write.extend_from_slice(&0u32.to_le_bytes());
    lying_write.extend_from_slice(&1000u32.to_le_bytes()); // says 1000 bytes follow, 4 do
    lying_write.extend_from_slice(&[0; 4]);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("VERSION claiming size 0", header(VERSION, 0), true),
        ("VERSION claiming less than its header", header(VERSION, 8), true),
        ("VERSION claiming 4 GiB", header(VERSION, u32::MAX), true),
        ("VERSION payload without NUL", version_no_nul, true),
        ("VERSION with no payload", version_empty, true),
        ("REGION_READ of 4 GiB", huge_read, true),
        ("REGION_WRITE whose data is shorter than announced", lying_write, true),
        ("a header cut short", vec![1, 0, 1, 0, 9], false),
        ("an unknown command", header(999, 16), true),
    ];
    for (what, bytes, expect_error_reply) in cases {
        let flags = send_raw(&socket, &bytes);
        if expect_error_reply {
            let flags = flags.unwrap_or_else(|| panic!("{what}: no error reply"));
            assert!(flags & FLAG_ERROR != 0, "{what}: reply flags {flags:#x} without the error bit");
        }
        std::thread::sleep(Duration::from_millis(100));
        sim.assert_alive();
        a_good_client_works(&socket);
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn a_second_client_is_told_the_device_is_busy_and_by_whom() {
    let mut sim = Sim::start("busy");
    let socket = sim.socket();
    let holder = VfioUserTransport::connect(&socket).expect("the first client");
    let started = Instant::now();
    let err = match VfioUserTransport::connect(&socket) {
        Ok(_) => panic!("a second session was granted while the first is held"),
        Err(e) => e.to_string(),
    };
    assert!(started.elapsed() < Duration::from_secs(3), "the refusal took {:?}", started.elapsed());
    assert!(err.contains("busy"), "{err}");
    assert!(err.contains(&format!("pid {}", std::process::id())), "the holder is named: {err}");
    // `sluice device info` says the same in one line, exit 1, and does not hang.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["device", "info", "--vfio-user"])
        .arg(&socket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("busy") && stderr.lines().count() == 1, "{stderr}");
    drop(holder);
    sim.assert_alive();
    a_good_client_works(&socket);
}
