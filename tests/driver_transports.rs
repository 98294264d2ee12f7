//! The same driver tests over the in-process model and over the model in another process
//! (`sluice sim` + vfio-user): bring-up and discovery, command round trips in polling and
//! interrupt mode, a punted packet received, an injected packet seen on the model's port, an
//! event read, and a device of another major version refused.
//!
//! For vfio-user, the model's port 0 is one end of a veth pair in a network namespace made for
//! the test (root only: `#[ignore = "needs root: …"]`, run by `scripts/test-all`), and the test's wire is an AF_PACKET
//! socket on the other end. The namespace and the server are removed when the test ends, also
//! when it fails.

use host_driver::dma::DmaRegion;
use host_driver::transport::EventFd;
use host_driver::transport::Transport;
use host_driver::transport::inprocess::InProcess;
use host_driver::transport::vfio_user::VfioUserTransport;
use host_driver::{DriverError, Nic, NicConfig};
use rtl_spec::codes::{EventKind, Opcode, PuntReason, Status};
use rtl_spec::formats::FlowCommand;
use rtl_spec::regs::{identity, ring_id};
use sim_model::port::{AfPacketPort, MemoryPort, MemoryPortHandle, Port, RxBurst};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames into and out of the model's port 0.
trait Wire {
    fn send(&mut self, frame: &[u8]);
    /// Frames the model sent, waiting up to `timeout` for at least one.
    fn received(&mut self, timeout: Duration) -> Vec<Vec<u8>>;
}

/// An AF_PACKET socket on the veth peer, owned by a thread that entered the namespace.
struct VethWire {
    to_send: mpsc::Sender<Vec<u8>>,
    got: mpsc::Receiver<Vec<u8>>,
}

impl Wire for VethWire {
    fn send(&mut self, frame: &[u8]) {
        self.to_send.send(frame.to_vec()).unwrap();
    }
    fn received(&mut self, timeout: Duration) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.got.recv_timeout(timeout).into_iter().collect();
        out.extend(self.got.try_iter());
        out
    }
}

/// Plays a device of another specification version over any transport.
struct Liar<T>(T, u32);

impl<T: Transport> Transport for Liar<T> {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn read32(&mut self, offset: u32) -> u32 {
        if offset == identity::BASE + identity::SPEC_VERSION { self.1 } else { self.0.read32(offset) }
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.0.write32(offset, value);
    }
    fn read64(&mut self, offset: u32) -> u64 {
        self.0.read64(offset)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        self.0.write64(offset, value);
    }
    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError> {
        self.0.alloc_dma(len)
    }
    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError> {
        self.0.free_dma(region)
    }
    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError> {
        self.0.interrupt(vector)
    }
    fn reset(&mut self) -> Result<(), DriverError> {
        self.0.reset()
    }
    fn service(&mut self) {
        self.0.service();
    }
}

/// A frame the model punts as a miss: Ethernet/IPv4/TCP SYN 192.0.2.1:40000 → 10.0.0.1:80.
fn syn(tag: u8) -> Vec<u8> {
    sluice_test_support::frame::Seg::new("192.0.2.1:40000", "10.0.0.1:80")
        .syn()
        .pkt([2, 0xc1, 0, 0, 0, tag], [2, 0, 0, 0, 0, 1])
        .with(|p| p.pad_to = 60)
        .build()
}

fn nop(cookie: u64) -> FlowCommand {
    FlowCommand { opcode: Opcode::Nop.into(), cookie: cookie.into(), ..FlowCommand::default() }
}

fn config(interrupts: bool) -> NicConfig {
    NicConfig { ring_log2: 6, interrupts, command_timeout: Duration::from_secs(2), ..NicConfig::default() }
}

/// The tests every transport must pass.
fn driver_tests(mut open: impl FnMut() -> Box<dyn Transport>, wire: &mut dyn Wire) {
    // A device of another major version is refused, naming both.
    let liar = Liar(open(), 0x0002_0001);
    let err = Nic::bring_up(Box::new(liar), config(false)).err().expect("refused");
    assert!(err.to_string().contains("2.1") && err.to_string().contains("1.5"), "{err}");

    for interrupts in [false, true] {
        let mut nic = Nic::bring_up(open(), config(interrupts)).expect("bring-up");
        let info = nic.info().clone();
        assert_eq!(info.spec_version, "1.5");
        assert_eq!(info.geometry.slots_per_bucket, 4);
        assert_eq!(info.blocks.len(), rtl_spec::regs::ALL_BLOCKS.len());

        let batch: Vec<_> = (0..100).map(nop).collect();
        let cpl = nic.execute(&batch).expect("commands complete");
        assert_eq!(cpl.len(), 100);
        assert!(
            cpl.iter().enumerate().all(|(i, c)| c.cookie.get() == i as u64 && c.status == Status::Ok as u8)
        );

        // A punt: the wire's frame arrives on an exception ring.
        let tag = u8::from(interrupts) + 1;
        wire.send(&syn(tag));
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !got.iter().any(|e: &host_driver::nic::Exception| e.frame == syn(tag))
            && Instant::now() < deadline
        {
            nic.recv_exceptions(0, &mut got, 16);
            nic.wait(ring_id::EXCEPTION0, Duration::from_millis(5));
        }
        let ours = got.iter().find(|e| e.frame == syn(tag)).expect("the frame was punted");
        assert_eq!(ours.desc.reason, PuntReason::Miss as u8);
        assert_eq!(ours.desc.port, 0);

        // An inject: the frame leaves on the model's port 0.
        let mut frame = syn(tag);
        frame[0] = 0x0e; // a unicast MAC nobody owns
        nic.inject(0, &frame).unwrap();
        nic.flush_injects();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = false;
        while !seen && Instant::now() < deadline {
            nic.transport().service();
            seen = wire.received(Duration::from_millis(20)).contains(&frame);
        }
        assert!(seen, "the injected frame reached the wire");

        // An event: a ring enabled with a bad size is refused and reported.
        let ring = nic.block(rtl_spec::codes::BlockType::Rings).unwrap() + 19 * 0x40;
        nic.transport().write32(ring + rtl_spec::regs::rings::RING_SIZE_LOG2, 40);
        nic.transport().write32(ring + rtl_spec::regs::rings::RING_CTRL, 1);
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while events.is_empty() && Instant::now() < deadline {
            nic.recv_events(&mut events, 8);
            nic.wait(ring_id::EVENT, Duration::from_millis(5));
        }
        assert_eq!(events.first().map(|e| e.kind), Some(EventKind::Error as u8));
    }
}

/// The in-process wire: the memory port of the newest device (each bring-up in the tests
/// opens a fresh device, as a fresh connection does over vfio-user).
struct LatestMemoryPort(Arc<Mutex<Vec<MemoryPortHandle>>>);

impl Wire for LatestMemoryPort {
    fn send(&mut self, frame: &[u8]) {
        if let Some(h) = self.0.lock().unwrap().last() {
            h.push_rx(frame.to_vec(), None);
        }
    }
    fn received(&mut self, _: Duration) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().last().map(MemoryPortHandle::take_tx).unwrap_or_default()
    }
}

#[test]
fn the_driver_tests_pass_in_process() {
    let handles: Arc<Mutex<Vec<MemoryPortHandle>>> = Arc::new(Mutex::new(Vec::new()));
    let hs = handles.clone();
    let open = move || -> Box<dyn Transport> {
        let clock = Arc::new(sim_model::clock::SystemClock::default());
        let mut t = InProcess::new(sim_model::device::ModelConfig::small(1024), clock).unwrap();
        let (p, h) = MemoryPort::new();
        t.attach_port(0, Box::new(p)).unwrap();
        hs.lock().unwrap().push(h);
        Box::new(t)
    };
    driver_tests(open, &mut LatestMemoryPort(handles));
}

/// A network namespace with a veth pair, removed on drop.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the vfio-user driver test needs root for its namespace and veth pair"
        );
        let name = format!("sluice-drv-{}", std::process::id());
        let ip = |args: &[&str]| Command::new("ip").args(args).status().is_ok_and(|s| s.success());
        let _ = ip(&["netns", "del", &name]);
        assert!(ip(&["netns", "add", &name]), "`ip netns add` failed (is iproute2 installed?)");
        let ns = Netns(name);
        for args in [
            vec!["-n", &ns.0, "link", "add", "nic0", "type", "veth", "peer", "name", "wire0"],
            vec!["-n", &ns.0, "link", "set", "nic0", "up"],
            vec!["-n", &ns.0, "link", "set", "wire0", "up"],
        ] {
            assert!(ip(&args), "ip {args:?}");
        }
        // The kernel must not speak on the model's wire (router solicitations, DAD).
        let _ = Command::new("ip")
            .args(["netns", "exec", &ns.0, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            .status();
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Server(Child, PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Opens an AF_PACKET port on `ifname` inside namespace `ns` and pumps frames over channels.
fn veth_wire(ns: &str, ifname: &str) -> VethWire {
    let (to_send, send_rx) = mpsc::channel::<Vec<u8>>();
    let (got_tx, got) = mpsc::channel::<Vec<u8>>();
    let (ready_tx, ready) = mpsc::channel::<()>();
    let path = format!("/var/run/netns/{ns}");
    let ifname = ifname.to_string();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("netns file");
        // SAFETY: `f` is an open namespace file; setns changes only this thread's namespace.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns");
        let mut port = AfPacketPort::open(&ifname).expect("af_packet on the wire end");
        ready_tx.send(()).unwrap();
        let mut batch = RxBurst::default();
        loop {
            match send_rx.try_recv() {
                Ok(frame) => {
                    port.send(&frame).expect("send on the wire");
                    port.flush().expect("flush the wire");
                }
                Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            batch.clear();
            let _ = port.recv_burst(&mut batch, 32);
            for f in batch.iter() {
                if got_tx.send(f.data.to_vec()).is_err() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    ready.recv_timeout(Duration::from_secs(5)).expect("wire thread ready");
    VethWire { to_send, got }
}

#[test]
#[ignore = "needs root: a network namespace and a veth pair (scripts/test-all runs it)"]
fn the_driver_tests_pass_over_vfio_user() {
    let ns = Netns::create();
    let dir = std::env::temp_dir().join(format!("sluice-drv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("nic.sock");
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["sim", "--port", "p0=nic0", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start sluice sim in the namespace");
    let _server = Server(child, dir.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "sluice sim did not create its socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut wire = veth_wire(&ns.0, "wire0");
    let open = || -> Box<dyn Transport> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match VfioUserTransport::connect(&socket) {
                Ok(t) => return Box::new(t),
                Err(e) if Instant::now() > deadline => panic!("connect: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    };
    driver_tests(open, &mut wire);
}
