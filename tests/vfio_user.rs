//! `sluice sim` end to end: the model served over vfio-user in a process of its own, driven
//! through `host_driver`'s vfio-user transport exactly as a card would be: registers by
//! region accesses, rings in memfd DMA memory shared with the server, interrupts on eventfds.

use host_driver::transport::Transport;
use host_driver::transport::vfio_user::VfioUserTransport;
use rtl_spec::codes::{Opcode, Status};
use rtl_spec::formats::{Completion, FlowCommand};
use rtl_spec::regs::{control, doorbell_offset, identity, interrupts, ring_id, rings};
use rtl_spec::ring::phase_for;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LOG2: u32 = 4;

/// A scratch directory removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let p = std::env::temp_dir().join(format!("sluice-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `sluice sim`, killed when dropped (also when the test fails).
struct Sim {
    child: Child,
}

impl Sim {
    fn start(socket: &Path, extra: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("sim")
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice sim");
        // `sluice sim` says "listening on" once its socket accepts clients (a stale socket file
        // may be there before that, so the file's presence proves nothing). The rest of its
        // stderr is passed through for the test log.
        let stderr = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[sim] {line}");
                if line.starts_with("sluice sim: listening on") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut sim = Sim { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while ready.recv_timeout(Duration::from_millis(20)).is_err() {
            if let Some(status) = sim.child.try_wait().unwrap() {
                panic!("sluice sim exited early: {status}");
            }
            assert!(Instant::now() < deadline, "sluice sim not listening on {} after 20 s", socket.display());
        }
        sim
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "sluice sim ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ring_reg(id: u32, reg: u32) -> u32 {
    rings::BASE + reg + id * 0x40
}

fn nop(cookie: u64, index: u32) -> FlowCommand {
    let mut c = FlowCommand { opcode: Opcode::Nop.into(), cookie: cookie.into(), ..FlowCommand::default() };
    c.flags.set_phase(phase_for(index, LOG2));
    c
}

fn wait_completion(cpl: &host_driver::dma::DmaRegion, index: u32) -> Completion {
    let slot = (index & ((1 << LOG2) - 1)) as usize;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c: Completion = cpl.read_obj(slot * 64);
        if c.flags.phase() == phase_for(index, LOG2) {
            return c;
        }
        assert!(Instant::now() < deadline, "no completion {index} in DMA memory");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_model_over_vfio_user_does_registers_dma_and_interrupts() {
    let started = Instant::now();
    let dir = TempDir::new("vfio-user");
    let socket = dir.0.join("nic.sock");
    let sim = Sim::start(&socket, &[]);
    let mut t = VfioUserTransport::connect(&socket).expect("connect");
    assert!(t.describe().contains("nic.sock"));

    // Identity.
    assert_eq!(t.read32(identity::BASE + identity::MAGIC), rtl_spec::MAGIC);
    assert_eq!(t.read32(identity::BASE + identity::SPEC_VERSION), rtl_spec::SPEC_VERSION);

    // Reset, then SCRATCH.
    t.write32(control::BASE + control::CTRL, control::CTRL::RESET.mask() as u32);
    assert_eq!(t.read32(control::BASE + control::STATUS) & 1, 1, "ready after reset");
    t.write32(control::BASE + control::SCRATCH, 0xA5A5_5A5A);
    assert_eq!(t.read32(control::BASE + control::SCRATCH), 0xA5A5_5A5A);

    // A command ring and a completion ring in shared DMA memory.
    let cmd = t.alloc_dma(256 << LOG2).unwrap();
    let cpl = t.alloc_dma(64 << LOG2).unwrap();
    for (id, region) in [(ring_id::COMMAND, &cmd), (ring_id::COMPLETION, &cpl)] {
        t.write64(ring_reg(id, rings::RING_BASE), region.iova());
        assert_eq!(t.read64(ring_reg(id, rings::RING_BASE)), region.iova(), "64-bit register");
        t.write32(ring_reg(id, rings::RING_SIZE_LOG2), LOG2);
        t.write32(ring_reg(id, rings::RING_CTRL), 1);
        assert_eq!(t.read32(ring_reg(id, rings::RING_STATUS)) & 1, 1, "ring {id} enabled");
    }
    t.write32(control::BASE + control::CTRL, 1);

    // A Nop: the device reads the command from the driver's memfd and writes the completion
    // back into it.
    cmd.write_obj(0, &nop(0xC0FFEE, 0));
    t.write32(doorbell_offset(ring_id::COMMAND), 1);
    let c = wait_completion(&cpl, 0);
    assert_eq!(c.opcode, Opcode::Nop as u8);
    assert_eq!(c.status, Status::Ok as u8);
    assert_eq!(c.cookie.get(), 0xC0FFEE);
    t.write32(doorbell_offset(ring_id::COMPLETION), 1);

    // An interrupt: the completion ring's source on vector 3, armed.
    let vector = 3u16;
    let fd = t.interrupt(vector).unwrap().expect("vfio-user has interrupts");
    assert!(fd.read().is_err(), "nothing pending yet");
    t.write32(
        interrupts::BASE + interrupts::SOURCE_VECTOR + 4 * ring_id::COMPLETION,
        0x8000_0000 | u32::from(vector),
    );
    t.write32(interrupts::BASE + interrupts::VEC_CTRL + 0x10 * u32::from(vector), 1);
    cmd.write_obj(256, &nop(0xBEEF, 1));
    t.write32(doorbell_offset(ring_id::COMMAND), 2);
    assert_eq!(wait_completion(&cpl, 1).cookie.get(), 0xBEEF);
    let deadline = Instant::now() + Duration::from_secs(5);
    let fired = loop {
        if let Ok(n) = fd.read() {
            break n;
        }
        assert!(Instant::now() < deadline, "vector {vector} did not fire");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(fired, 1);
    assert_eq!(t.read32(interrupts::BASE + interrupts::VEC_FIRED + 0x10 * u32::from(vector)), 1);
    assert_eq!(
        t.read32(interrupts::BASE + interrupts::VEC_CTRL + 0x10 * u32::from(vector)) & 1,
        0,
        "disarmed"
    );

    // Device reset over the protocol; DMA unmap.
    t.reset().unwrap();
    assert_eq!(t.read32(control::BASE + control::SCRATCH), 0, "DEVICE_RESET resets the registers");
    t.write32(control::BASE + control::SCRATCH, 7);
    t.free_dma(&cmd).unwrap();
    t.free_dma(&cpl).unwrap();
    drop(t);

    // The next client finds the device as the last one left it (no reset between clients, so a
    // restarted daemon can adopt the flows the NIC kept forwarding); resetting is its call.
    let mut t = VfioUserTransport::connect(&socket).expect("reconnect");
    assert_eq!(t.read32(control::BASE + control::SCRATCH), 7, "kept between clients");
    t.reset().unwrap();
    assert_eq!(t.read32(control::BASE + control::SCRATCH), 0);
    assert_eq!(t.read32(identity::BASE + identity::MAGIC), rtl_spec::MAGIC);
    drop(t);

    // SIGTERM: a clean exit that removes the socket.
    let status = sim.terminate();
    assert!(status.success(), "sluice sim exited with {status}");
    assert!(!socket.exists(), "the socket is removed on exit");
    eprintln!("end to end over vfio-user: {:?}", started.elapsed());
}

#[test]
fn a_second_server_on_a_live_socket_is_refused_and_a_stale_socket_replaced() {
    let dir = TempDir::new("vfio-user-twice");
    let socket = dir.0.join("nic.sock");
    let first = Sim::start(&socket, &[]);
    let out =
        Command::new(env!("CARGO_BIN_EXE_sluice")).args(["sim", "--socket"]).arg(&socket).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another server is listening") && err.contains("nic.sock"), "{err}");
    assert!(socket.exists(), "the live server's socket is left alone");
    drop(first); // SIGKILL: the socket file stays behind, stale.
    assert!(socket.exists());
    let second = Sim::start(&socket, &[]);
    let mut t = VfioUserTransport::connect(&socket).expect("connect to the replacement");
    assert_eq!(t.read32(identity::BASE + identity::MAGIC), rtl_spec::MAGIC);
    drop(t);
    assert!(second.terminate().success());
}

#[test]
fn bad_port_values_and_missing_interfaces_exit_2_naming_them() {
    let dir = TempDir::new("vfio-user-ports");
    let socket = dir.0.join("nic.sock");
    for (arg, expect) in [
        ("p0", "no '='"),
        ("x0=lo", "not pN"),
        ("p9=lo", "p0..p1"),
        ("p0=", "no interface"),
        ("p0=sluice-nope0", "sluice-nope0"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["sim", "--socket"])
            .arg(&socket)
            .args(["--port", arg])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--port {arg}: {err}");
        assert!(err.contains(arg) && err.contains(expect), "--port {arg}: {err}");
        assert!(!socket.exists(), "nothing served for --port {arg}");
    }
}

#[test]
fn connecting_to_no_server_says_what_to_run() {
    let dir = TempDir::new("vfio-user-none");
    let socket = dir.0.join("nic.sock");
    let Err(e) = VfioUserTransport::connect(&socket) else { panic!("connected to nothing") };
    let msg = e.to_string();
    assert!(msg.contains("no such socket") && msg.contains("sluice sim --socket"), "{msg}");
}
