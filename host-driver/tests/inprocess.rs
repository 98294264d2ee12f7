//! The driver over the in-process model: bring-up, discovery, commands, punts, injects,
//! events, interrupts and polling, version refusal, a hung device detected and recovered.

use host_driver::dma::DmaRegion;
use host_driver::nic::Exception;
use host_driver::transport::Transport;
use host_driver::transport::inprocess::InProcess;
use host_driver::{DriverError, Nic, NicConfig};
use rtl_spec::codes::{EventKind, Opcode, PuntReason, Status};
use rtl_spec::formats::{FlowCommand, NextHopCtl, NextHopEntry};
use rtl_spec::regs::identity;
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use sim_model::port::{MemoryPort, MemoryPortHandle};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vmm_sys_util::eventfd::EventFd;
use zerocopy::IntoBytes;

/// The in-process model shared with the test, so the test can reach the model's ports and
/// clock while the driver owns the transport. `spec_version` overrides what the identity block
/// says, to play a device of another version.
#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<InProcess>>,
    spec_version: Option<u32>,
}

impl Transport for Shared {
    fn describe(&self) -> String {
        self.inner.lock().unwrap().describe()
    }
    fn read32(&mut self, offset: u32) -> u32 {
        if offset == identity::BASE + identity::SPEC_VERSION {
            if let Some(v) = self.spec_version {
                return v;
            }
        }
        self.inner.lock().unwrap().read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.inner.lock().unwrap().write32(offset, value);
    }
    fn read64(&mut self, offset: u32) -> u64 {
        self.inner.lock().unwrap().read64(offset)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        self.inner.lock().unwrap().write64(offset, value);
    }
    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError> {
        self.inner.lock().unwrap().alloc_dma(len)
    }
    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError> {
        self.inner.lock().unwrap().free_dma(region)
    }
    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError> {
        self.inner.lock().unwrap().interrupt(vector)
    }
    fn reset(&mut self) -> Result<(), DriverError> {
        self.inner.lock().unwrap().reset()
    }
    fn service(&mut self) {
        self.inner.lock().unwrap().service();
    }
}

struct Rig {
    shared: Shared,
    ports: Vec<MemoryPortHandle>,
}

fn rig() -> Rig {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let mut model = InProcess::new(ModelConfig::small(1024), clock.clone()).unwrap();
    let mut ports = Vec::new();
    for n in 0..2 {
        let (p, h) = MemoryPort::new();
        model.attach_port(n, Box::new(p)).unwrap();
        ports.push(h);
    }
    Rig { shared: Shared { inner: Arc::new(Mutex::new(model)), spec_version: None }, ports }
}

fn cfg(interrupts: bool) -> NicConfig {
    NicConfig {
        ring_log2: 6,
        exception_rings: 2,
        interrupts,
        command_timeout: Duration::from_millis(200),
        ..NicConfig::default()
    }
}

/// An Ethernet/IPv4/TCP SYN from 192.0.2.1:40000 to 10.0.0.1:80 with a valid checksum layout
/// (the model only parses it; checksums are not its business on a punt).
fn syn() -> Vec<u8> {
    let mut f = vec![0u8; 54];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0xc1, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&40u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[192, 0, 2, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 1]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x02;
    f
}

fn nop(cookie: u64) -> FlowCommand {
    FlowCommand { opcode: Opcode::Nop.into(), cookie: cookie.into(), ..FlowCommand::default() }
}

#[test]
fn bring_up_discovers_the_device() {
    let r = rig();
    let nic = Nic::bring_up(Box::new(r.shared.clone()), cfg(false)).unwrap();
    let info = nic.info();
    assert_eq!(info.spec_version, "1.5");
    assert_eq!(info.geometry.counter_sets, 2048);
    assert_eq!(info.geometry.records, 1024);
    assert_eq!(info.geometry.buckets, 512);
    assert_eq!(info.geometry.slots_per_bucket, 4);
    assert_eq!(info.blocks.len(), rtl_spec::regs::ALL_BLOCKS.len());
    assert_eq!(info.ports.len(), 2);
    assert!(info.capability_names.iter().any(|c| c == "IPV6"));
    let text = info.to_string();
    assert!(text.contains("1024 records"), "{text}");
}

fn command_round_trip(interrupts: bool) {
    let r = rig();
    let mut nic = Nic::bring_up(Box::new(r.shared.clone()), cfg(interrupts)).unwrap();
    let cpl = nic.execute(&[nop(7), nop(8)]).unwrap();
    assert_eq!(cpl.iter().map(|c| c.cookie.get()).collect::<Vec<_>>(), vec![7, 8]);
    assert!(cpl.iter().all(|c| c.status == Status::Ok as u8));
    // More commands than the ring holds go through in batches.
    for round in 0..3u64 {
        let batch: Vec<_> = (0..64).map(|i| nop(round * 100 + i)).collect();
        assert_eq!(nic.execute(&batch).unwrap().len(), 64);
    }
    let mut nh = FlowCommand { opcode: Opcode::NextHopSet.into(), arg: 3.into(), ..FlowCommand::default() };
    let entry =
        NextHopEntry { ctl: NextHopCtl::new().with_valid(true).with_port(1), ..NextHopEntry::default() };
    nh.payload[..16].copy_from_slice(entry.as_bytes());
    assert_eq!(nic.execute(&[nh]).unwrap()[0].status, Status::Ok as u8);
    assert!(matches!(nic.push_commands(&vec![nop(0); 65]), Err(DriverError::RingFull("command"))));
}

#[test]
fn commands_complete_in_polling_mode() {
    command_round_trip(false);
}

#[test]
fn commands_complete_in_interrupt_mode() {
    command_round_trip(true);
}

fn punt_inject_event(interrupts: bool) {
    let r = rig();
    let mut nic = Nic::bring_up(Box::new(r.shared.clone()), cfg(interrupts)).unwrap();
    r.ports[0].push_rx(syn(), None);
    let mut got: Vec<Exception> = Vec::new();
    for _ in 0..100 {
        for q in 0..2 {
            nic.recv_exceptions(q, &mut got, 8);
        }
        if !got.is_empty() {
            break;
        }
        nic.wait(rtl_spec::regs::ring_id::EXCEPTION0, Duration::from_millis(1));
    }
    assert_eq!(got.len(), 1, "the miss was punted");
    assert_eq!(got[0].desc.reason, PuntReason::Miss as u8);
    assert_eq!(got[0].frame, syn());

    nic.inject(1, &syn()).unwrap();
    nic.flush_injects();
    assert_eq!(r.ports[1].take_tx(), vec![syn()], "the injected frame left on port 1");

    // A ring enabled with a bad size posts an error event on the event ring.
    let rb = nic.block(rtl_spec::codes::BlockType::Rings).unwrap();
    let ring = rb + 19 * 0x40;
    nic.transport().write32(ring + rtl_spec::regs::rings::RING_SIZE_LOG2, 40);
    nic.transport().write32(ring + rtl_spec::regs::rings::RING_CTRL, 1);
    let mut events = Vec::new();
    nic.recv_events(&mut events, 8);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Error as u8);
    assert_eq!(events[0].cause, rtl_spec::codes::ErrorCode::BadRingConfig as u8);
}

#[test]
fn punts_injects_and_events_in_polling_mode() {
    punt_inject_event(false);
}

#[test]
fn punts_injects_and_events_in_interrupt_mode() {
    punt_inject_event(true);
}

#[test]
fn a_device_of_another_major_version_is_refused_naming_both() {
    let mut r = rig();
    r.shared.spec_version = Some(0x0002_0003);
    let err = Nic::bring_up(Box::new(r.shared.clone()), cfg(false)).err().expect("refused");
    assert!(matches!(err, DriverError::VersionMismatch { device: (2, 3), driver: (1, 5) }));
    let text = err.to_string();
    assert!(text.contains("2.3") && text.contains("1.5"), "{text}");
}

#[test]
fn a_hung_device_is_detected_and_recovered() {
    let r = rig();
    let mut nic = Nic::bring_up(Box::new(r.shared.clone()), cfg(false)).unwrap();
    r.shared.inner.lock().unwrap().device().set_stalled(true);
    let err = nic.execute(&[nop(1)]).unwrap_err();
    assert!(matches!(err, DriverError::CompletionTimeout { outstanding: 1, .. }), "{err}");
    let mut nic = nic.recover().unwrap();
    assert_eq!(nic.execute(&[nop(2)]).unwrap()[0].cookie.get(), 2);
}

#[test]
fn the_model_on_its_own_thread_punts_and_sends_without_the_driver_serving_it() {
    use host_driver::transport::threaded::ThreadedInProcess;
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let mut model = InProcess::new(ModelConfig::small(1024), clock).unwrap();
    let mut ports = Vec::new();
    for n in 0..2 {
        let (p, h) = MemoryPort::new();
        model.attach_port(n, Box::new(p)).unwrap();
        ports.push(h);
    }
    let threaded = ThreadedInProcess::start(model).unwrap();
    assert!(threaded.describe().contains("own thread"));
    let mut nic = Nic::bring_up(Box::new(threaded), cfg(false)).unwrap();
    // The frame waits on the model's port: only the model's thread can take it from there
    // (the driver's `service` does nothing for this transport).
    ports[0].push_rx(syn(), None);
    let mut got: Vec<Exception> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while got.is_empty() && std::time::Instant::now() < deadline {
        for q in 0..2 {
            nic.recv_exceptions(q, &mut got, 8);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got.len(), 1, "the model's thread punted the miss");
    assert_eq!(got[0].frame, syn());
    nic.inject(1, &syn()).unwrap();
    nic.flush_injects();
    assert_eq!(ports[1].take_tx(), vec![syn()], "the injected frame left on port 1");
    // Dropping the driver stops and joins the thread.
    drop(nic);
}

/// Punts and injects through the queues the driver lends out, and what becomes of them when
/// the device is reset: the old ones turn inert, the driver holds new ones.
#[test]
fn lent_queues_work_and_go_inert_after_a_reset() {
    let r = rig();
    let mut nic = Nic::bring_up(Box::new(r.shared.clone()), cfg(false)).unwrap();
    let mut q = nic.take_queues().expect("lent once");
    assert!(nic.take_queues().is_none(), "and only once");
    assert_eq!(q.exception_queues(), 2);
    r.ports[0].push_rx(syn(), None);
    let mut got: Vec<Exception> = Vec::new();
    for _ in 0..100 {
        for n in 0..2 {
            q.recv_exceptions(n, &mut got, 8);
        }
        if !got.is_empty() {
            break;
        }
        nic.wait(rtl_spec::regs::ring_id::EXCEPTION0, Duration::from_millis(1));
    }
    assert_eq!(got.len(), 1, "the miss was punted to the lent queues");
    assert_eq!(nic.recv_exceptions(0, &mut got, 8), 0, "the Nic no longer drives them");
    let frame = got.pop().unwrap().frame;
    assert_eq!(frame, syn());
    // More frames than the ring holds: the cached consumer index is refreshed when the ring
    // looks full, and every frame leaves.
    for _ in 0..3 {
        for _ in 0..64 {
            q.inject(1, &frame).unwrap();
        }
        q.flush_injects();
        r.shared.clone().service();
    }
    assert_eq!(r.ports[1].take_tx().len(), 192, "every injected frame left on port 1");
    q.recycle(frame);
    assert_eq!(q.pool().spare(), 1);

    nic.reinit().unwrap();
    assert!(!q.is_live(), "the rings taken before the reset are not the device's");
    assert!(q.inject(1, &syn()).is_err());
    let mut q = nic.take_queues().expect("new rings after the reset");
    assert!(q.is_live());
    q.inject(1, &syn()).unwrap();
    q.flush_injects();
    r.shared.clone().service();
    assert_eq!(r.ports[1].take_tx(), vec![syn()]);
}

#[test]
fn the_counter_bank_is_allocated_and_read_in_one_command() {
    let r = rig();
    let mut nic = Nic::bring_up(Box::new(r.shared.clone()), cfg(false)).unwrap();
    let cpl = nic.execute(&[Nic::counter_set_alloc_command(3), Nic::counter_set_alloc_command(3)]).unwrap();
    assert_eq!(cpl[0].status, Status::Ok as u8);
    assert_eq!(cpl[1].status, Status::CounterSetLive as u8, "a live set is not allocated twice");
    let buf = nic.counter_bank_buffer().unwrap();
    assert_eq!(buf.sets(), 2048);
    let mut sets = Vec::new();
    nic.read_counter_bank(&buf, 4, &mut sets).unwrap();
    assert_eq!(sets.len(), 4);
    assert!(sets.iter().all(|s| *s == rtl_spec::formats::CounterSet::default()));
    let cpl = nic.execute(&[Nic::counter_set_free_command(3), Nic::counter_set_free_command(3)]).unwrap();
    assert_eq!((cpl[0].status, cpl[1].status), (Status::Ok as u8, Status::CounterSetNotLive as u8));
}

/// `NicConfig::punt_share` reaches `PUNT.REASON_SHARE` at bring-up (and so after every reset
/// the driver recovers from); reasons left at 100 are not written.
#[test]
fn the_punt_shares_are_programmed_at_bring_up() {
    let r = rig();
    let mut c = cfg(false);
    c.punt_share[rtl_spec::codes::PuntReason::Miss as usize] = 60;
    let _nic = Nic::bring_up(Box::new(r.shared.clone()), c).unwrap();
    let reg = |reason: rtl_spec::codes::PuntReason| {
        let at = rtl_spec::regs::punt::BASE + rtl_spec::regs::punt::REASON_SHARE + 4 * reason as u32;
        r.shared.inner.lock().unwrap().read32(at)
    };
    assert_eq!(reg(rtl_spec::codes::PuntReason::Miss), 60);
    assert_eq!(reg(rtl_spec::codes::PuntReason::TcpFin), 100);
}

/// The inject buffer is packed: a ring of jumbo frames fills its buffer before its entries,
/// which is a full ring to the caller (nothing is overwritten), and once the device has taken
/// them the space is used again; every frame leaves intact and in order.
#[test]
fn jumbo_injects_fill_the_buffer_before_the_ring_and_leave_intact() {
    let r = rig();
    let mut nic = Nic::bring_up(Box::new(r.shared.clone()), cfg(false)).unwrap();
    nic.configure_port(1, 9000, [2, 0, 0, 0, 0, 2]).unwrap();
    let jumbo = |n: u8| {
        let mut f = syn();
        f.resize(9000, n);
        f
    };
    for round in 0..3u8 {
        let mut sent = Vec::new();
        loop {
            let f = jumbo(round.wrapping_mul(50).wrapping_add(sent.len() as u8));
            match nic.inject(1, &f) {
                Ok(()) => sent.push(f),
                Err(e) => {
                    assert!(e.to_string().contains("inject"), "{e}");
                    break;
                }
            }
            assert!(sent.len() < 64, "a 64-entry ring's buffer took 64 jumbo frames");
        }
        assert!(sent.len() >= 8, "only {} jumbo frames fit", sent.len());
        nic.flush_injects();
        r.shared.clone().service();
        assert_eq!(r.ports[1].take_tx(), sent, "round {round}: every frame left, intact, in order");
    }
}
