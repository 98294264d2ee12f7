//! The device: the state behind BAR0 and the work a real NIC does on its own.
//!
//! Everything the host can see goes through [`Device::read32`]/[`Device::write32`] (and the
//! 64-bit twins) on BAR0 offsets, and through DMA on the host memory given at construction.
//! Work starts three ways, as in hardware: a doorbell write (commands, injects), a frame from a
//! port ([`Device::receive`] or [`Device::poll_ports`]) and time ([`Device::tick`]: the ager and
//! interrupt coalescing). Everything runs synchronously in the caller's thread, so a test that
//! steps the device sees a deterministic sequence; [`Device::run`] drives it live.
//!
//! Submodules: `registers` (BAR0 decode), `rings`, `table` (records, index, lookup),
//! `commands` (flow-command execution), `bank` (the counter bank), `datapath` (parse, lookup, rewrite, punt, inject,
//! events), `ager`, `irq`, `flashctl` (the flash controller, boot and fallback).
//!
//! The geometry is the booted image's: a device boots from its flash when it is made and again
//! at a reset after the active slot changed, and takes the image's model configuration.

mod ager;
mod bank;
mod commands;
mod datapath;
mod flashctl;
mod irq;
mod keyhash;
mod pipeline;
mod registers;
mod rings;
mod table;
mod table_memory;

use crate::clock::Clock;
use crate::flash::Flash;
use crate::mem::DmaMemory;
use crate::port::{BURST, Port, RxBurst};
use rtl_spec::codes::{DropReason, PuntReason};
use rtl_spec::formats::{FlowRecord, IndexBucket, IndexSlot, NextHopEntry, NextHopTunnel, RecordExt};
use rtl_spec::regs::ring_id;
use std::sync::Arc;
use zerocopy::FromZeros;

pub use irq::InterruptSink;
use rings::Ring;
/// The model's geometry and identity, as a model image's payload declares it (the contract's).
pub use rtl_spec::image::ModelConfig;
use table::FlowTable;

/// One Ethernet port's registers and attachment.
pub(crate) struct PortState {
    pub mac: [u8; 6],
    pub enable: bool,
    pub mtu: u32,
    /// The port's counter registers, as the contract defines them.
    pub counters: rtl_spec::counters::PortCounters,
    pub io: Option<Box<dyn Port>>,
    /// The last send failed (its warning is logged once per run of failures).
    pub send_failing: bool,
    /// The last receive failed (likewise).
    pub recv_failing: bool,
}

/// The global counters block, as the contract defines it (registers are read from it).
pub(crate) type Counters = rtl_spec::counters::DatapathCounters;

/// Registers that hold plain values (everything not derived from other state).
pub(crate) struct Regs {
    pub enable: bool,
    pub error: u32,
    pub scratch: u32,
    pub ager_enable: bool,
    pub tick_us: u32,
    pub scan_period_ms: u32,
    pub queues: u32,
    pub lport_mask: u32,
    pub steer_seed: u32,
    pub hit_action: u32,
    pub reason_queue: [u32; 16],
    pub reason_share: [u32; 16],
    pub reta: [u32; 64],
    pub lip_addr: [[u32; 4]; 16],
    pub lip_ctl: [u32; 16],
    pub flash: [u32; 16],
    pub flash_dma: u64,
}

/// Ager progress and counters.
#[derive(Default)]
pub(crate) struct AgerState {
    pub cursor: u32,
    pub last_ns: Option<u64>,
    pub scans: u64,
    pub aged: u64,
    pub evicted: u64,
}

/// Flow-table command counters.
#[derive(Default)]
pub(crate) struct TableCounters {
    pub commands: u64,
    pub inserts: u64,
    pub deletes: u64,
    pub fails: u64,
}

/// The table memory of the running image, read-only: see [`Device::table_image`].
pub struct TableImage<'a> {
    /// Flow records, by record index.
    pub records: &'a [FlowRecord],
    /// The record extension memory (spec 1.4), by record index.
    pub ext: &'a [RecordExt],
    /// Index buckets, by bucket number.
    pub buckets: &'a [IndexBucket],
    /// Stash entries.
    pub stash: &'a [IndexSlot],
    /// Next-hop entries.
    pub next_hops: &'a [NextHopEntry],
}

/// The software NIC.
pub struct Device {
    cfg: ModelConfig,
    mem: Arc<dyn DmaMemory>,
    clock: Arc<dyn Clock>,
    regs: Regs,
    counters: Counters,
    table: FlowTable,
    table_counters: TableCounters,
    next_hops: Vec<NextHopEntry>,
    /// The outer addresses of each next-hop entry whose action is `Tunnel` (spec 1.3), by entry
    /// number: a table beside the entries, so theirs keeps its 16-byte stride.
    tunnels: Vec<NextHopTunnel>,
    /// The counter bank (spec 1.2).
    bank: bank::CounterBank,
    rings: Vec<Ring>,
    irq: irq::Irq,
    ports: Vec<PortState>,
    ager: AgerState,
    reset_count: u32,
    stalled: bool,
    /// The receive pipeline's per-burst arrays, kept between bursts so that a burst does not
    /// initialise 4 KiB of them first (taken while a burst runs).
    burst: Option<Box<pipeline::Burst>>,
    scratch_frame: Vec<u8>,
    /// The burst every port receives into, reused from round to round.
    rx_burst: RxBurst,
    /// Bit `n`: frames were queued on port `n` since its last flush.
    tx_pending: u32,
    flash: flashctl::FlashCtl,
    /// Attachments of ports the running image does not have (kept for an image that has them).
    parked_ports: Vec<Option<Box<dyn Port>>>,
}

impl Device {
    /// A device with the given geometry, reaching host memory through `mem` and taking time
    /// from `clock`. Fails with a message naming the field when the geometry is invalid. Its
    /// flash is in memory, with the factory image of `cfg` in slot 0.
    pub fn new(cfg: ModelConfig, mem: Arc<dyn DmaMemory>, clock: Arc<dyn Clock>) -> Result<Self, String> {
        cfg.validate()?;
        let flash = Flash::with_image(&crate::flash::factory_image(&cfg));
        Self::with_flash(flash, cfg, mem, clock)
    }

    /// A device that powers on from `flash`: it boots the active slot (or falls back, or runs
    /// the factory image `factory` when neither slot holds a valid image) and takes the booted
    /// image's geometry.
    pub fn with_flash(
        flash: Flash,
        factory: ModelConfig,
        mem: Arc<dyn DmaMemory>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        factory.validate()?;
        let mut dev = Device {
            table: FlowTable::new(1, 2, 0),
            next_hops: Vec::new(),
            tunnels: Vec::new(),
            bank: bank::CounterBank::new(),
            rings: Vec::new(),
            irq: irq::Irq::new(),
            regs: Regs::reset(),
            counters: Counters::default(),
            table_counters: TableCounters::default(),
            ports: Vec::new(),
            ager: AgerState::default(),
            reset_count: 0,
            stalled: false,
            burst: None,
            scratch_frame: Vec::with_capacity(2048),
            rx_burst: RxBurst::with_capacity(BURST, BURST * 2048),
            tx_pending: 0,
            flash: flashctl::FlashCtl::new(flash, factory.clone()),
            parked_ports: Vec::new(),
            cfg: factory,
            mem,
            clock,
        };
        dev.flash_boot(false);
        dev.reset_state();
        Ok(dev)
    }

    /// The flash, as the model holds it.
    pub fn flash(&self) -> &Flash {
        &self.flash.store
    }

    /// The flash, to cut its power in a test ([`Flash::cut_power_after`]).
    pub fn flash_mut(&mut self) -> &mut Flash {
        &mut self.flash.store
    }

    /// The geometry of the running image.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The table memory as a hardware debug port would dump it, in the contract's formats. No
    /// driver reads it (the host keeps its own shadow); the RTL testbench loads it as the flow
    /// table's memory image for each fixture case (`SLUICE_FIXTURES_RTL`).
    pub fn table_image(&self) -> TableImage<'_> {
        TableImage {
            records: &self.table.records,
            ext: &self.table.ext,
            buckets: &self.table.buckets,
            stash: &self.table.stash,
            next_hops: &self.next_hops,
        }
    }

    /// Bytes of the flow table's records and index buckets, which live in mappings of their own
    /// (see `table_memory`), not on the heap: what the card's table memory holds for this
    /// geometry. (The stash and the record extension memory are on the heap.)
    pub fn table_mapped_bytes(&self) -> u64 {
        (std::mem::size_of_val(&*self.table.records) + std::mem::size_of_val(&*self.table.buckets)) as u64
    }

    /// Attaches port `n` to a source and sink of frames (a wire). Replaces any earlier one.
    /// The port's MAC register takes the attachment's MAC when it has one.
    pub fn attach_port(&mut self, n: u8, port: Box<dyn Port>) -> Result<(), String> {
        let count = self.ports.len();
        let state =
            self.ports.get_mut(n as usize).ok_or_else(|| format!("port {n}: the model has {count}"))?;
        if let Some(mac) = port.mac() {
            state.mac = mac;
        }
        state.io = Some(port);
        Ok(())
    }

    /// Where interrupts go: called with the vector number each time a vector fires.
    pub fn set_interrupt_sink(&mut self, sink: InterruptSink) {
        self.irq.sink = Some(sink);
    }

    /// Makes the device stop taking commands (a hung device), for tests of the host's
    /// completion timeout. A reset clears it.
    pub fn set_stalled(&mut self, stalled: bool) {
        self.stalled = stalled;
        if !stalled {
            self.process_commands();
        }
    }

    /// Pulls a burst of up to `budget` frames from every attached port in turn and processes
    /// each burst, then hands what it sent to the wires (one flush per port that sent). Returns
    /// how many frames were processed. Port errors are logged and the port is skipped this
    /// round.
    pub fn poll_ports(&mut self, budget: usize) -> usize {
        let mut burst = std::mem::take(&mut self.rx_burst);
        let mut done = 0;
        for n in 0..self.ports.len() {
            burst.clear();
            let state = &mut self.ports[n];
            let Some(io) = state.io.as_mut() else { continue };
            if let Err(e) = io.recv_burst(&mut burst, budget) {
                if !state.recv_failing {
                    tracing::warn!(port = n, error = %e, "port receive failed; retrying quietly");
                }
                state.recv_failing = true;
                continue;
            }
            state.recv_failing = false;
            let mut frames: [(u8, &[u8]); pipeline::LOOKUP_BATCH] = [(0, &[]); pipeline::LOOKUP_BATCH];
            let mut held = 0;
            for frame in burst.iter() {
                frames[held] = (n as u8, frame.data);
                held += 1;
                if held == frames.len() {
                    self.receive_frames(&frames);
                    held = 0;
                }
            }
            self.receive_frames(&frames[..held]);
            done += burst.len();
            self.flush_ports();
        }
        self.rx_burst = burst;
        done
    }

    /// The descriptors an idle poller can sleep on: one per attached port that has one
    /// ([`Port::poll_fd`]).
    pub fn port_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.ports.iter().filter_map(|p| p.io.as_deref().and_then(Port::poll_fd)).collect()
    }

    /// Hands the frames queued on every port to its wire: one flush per port that has some.
    pub(crate) fn flush_ports(&mut self) {
        let pending = std::mem::take(&mut self.tx_pending);
        for (n, state) in self.ports.iter_mut().enumerate() {
            if pending & (1 << n) == 0 {
                continue;
            }
            let Some(io) = state.io.as_mut() else { continue };
            if let Err(e) = io.flush() {
                if !state.send_failing {
                    tracing::warn!(port = n, error = %e, "port send failed; counting drops until it recovers");
                }
                state.send_failing = true;
            }
        }
    }

    /// Lets time act: runs the ager for the time elapsed since the last call and fires
    /// interrupts whose coalescing delay has passed.
    pub fn tick(&mut self) {
        let now = self.clock.now_ns();
        self.ager_advance(now);
        self.irq_timers(now);
        self.flash_watchdog(now);
    }

    /// Runs the device live until `stop` returns true: polls the ports, ticks, and when there
    /// was nothing to do sleeps in `poll()` on the ports' descriptors (waking as soon as a frame
    /// arrives, after 50 µs at most so that time-driven work goes on).
    pub fn run(&mut self, mut stop: impl FnMut() -> bool) {
        let fds = self.port_fds();
        while !stop() {
            let n = self.poll_ports(BURST);
            self.tick();
            if n == 0 {
                wait_readable(&fds, std::time::Duration::from_micros(50));
            }
        }
    }

    /// Resets the device as `CONTROL.CTRL.RESET` does: every register to its reset value, every
    /// ring disabled, both tables empty; when the active flash slot is not the booted one, it
    /// boots it (and takes its geometry). Port attachments and the interrupt sink stay.
    pub fn reset(&mut self) {
        if self.flash.reboot_due() {
            self.flash_boot(false);
        }
        self.reset_state();
        self.reset_count = self.reset_count.wrapping_add(1);
    }

    fn reset_state(&mut self) {
        self.regs = Regs::reset();
        self.counters = Counters::default();
        self.table = FlowTable::new(self.cfg.records, self.cfg.buckets, self.cfg.stash);
        self.table_counters = TableCounters::default();
        self.next_hops = NextHopEntry::new_vec_zeroed(self.cfg.next_hops as usize).unwrap_or_default();
        self.tunnels = NextHopTunnel::new_vec_zeroed(self.cfg.next_hops as usize).unwrap_or_default();
        self.bank = bank::CounterBank::new();
        self.rings = (0..ring_id::EXCEPTION0 + u32::from(self.cfg.exception_rings)).map(Ring::new).collect();
        self.irq.reset();
        self.ager = AgerState::default();
        self.stalled = false;
        let mut attached: Vec<Option<Box<dyn Port>>> = self.ports.iter_mut().map(|p| p.io.take()).collect();
        for (n, parked) in std::mem::take(&mut self.parked_ports).into_iter().enumerate() {
            if attached.len() <= n {
                attached.resize_with(n + 1, || None);
            }
            if parked.is_some() {
                attached[n] = parked;
            }
        }
        self.ports = (0..self.cfg.ports).map(PortState::new).collect();
        for (n, io) in attached.into_iter().enumerate() {
            match self.ports.get_mut(n) {
                Some(p) => {
                    if let Some(mac) = io.as_deref().and_then(Port::mac) {
                        p.mac = mac;
                    }
                    p.io = io;
                }
                None if io.is_some() => {
                    self.parked_ports.resize_with(n + 1, || None);
                    self.parked_ports[n] = io;
                }
                None => {}
            }
        }
    }

    /// Current time in ager ticks, as `last_seen` records it.
    fn now_ticks(&self) -> u32 {
        ticks_at(self.clock.now_ns(), self.regs.tick_us)
    }

    fn count_drop(&mut self, reason: DropReason) {
        self.counters.drops += 1;
        self.counters.drop_reason[reason as usize] += 1;
    }

    fn count_punt(&mut self, reason: PuntReason) {
        self.counters.punts += 1;
        self.counters.punt_reason[reason as usize] += 1;
    }
}

/// Sleeps until one of `fds` polls readable or `timeout` passes (just sleeps when there are
/// none); returns whether one is readable. For pollers that sleep when the ports are idle.
pub fn wait_readable(fds: &[std::os::fd::RawFd], timeout: std::time::Duration) -> bool {
    if fds.is_empty() {
        std::thread::sleep(timeout);
        return false;
    }
    let mut polls: [libc::pollfd; 8] = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 8];
    for (p, &fd) in polls.iter_mut().zip(fds) {
        *p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    }
    let count = fds.len().min(polls.len());
    // ppoll takes the timeout to the nanosecond (poll's is in milliseconds).
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: `polls[..count]` are live pollfd entries and `ts` a live timespec; ppoll writes
    // only the entries' `revents`.
    let rc =
        unsafe { libc::ppoll(polls.as_mut_ptr(), count as libc::nfds_t, &raw const ts, std::ptr::null()) };
    rc > 0
}

/// Device time in ager ticks (wrapping 32-bit).
fn ticks_at(now_ns: u64, tick_us: u32) -> u32 {
    (now_ns / 1000 / u64::from(tick_us.max(1))) as u32
}

impl PortState {
    fn new(n: u8) -> Self {
        PortState {
            mac: [0x02, 0, 0, 0, 0, n + 1],
            enable: false,
            mtu: 1500,
            counters: rtl_spec::counters::PortCounters::default(),
            io: None,
            send_failing: false,
            recv_failing: false,
        }
    }

    fn link_up(&self) -> bool {
        self.io.as_deref().is_some_and(Port::link_up)
    }
}

impl Regs {
    fn reset() -> Self {
        Regs {
            enable: false,
            error: 0,
            scratch: 0,
            ager_enable: true,
            tick_us: 1000,
            scan_period_ms: 1000,
            queues: 1,
            lport_mask: 0,
            steer_seed: 0x5F37_59DF,
            hit_action: 0,
            reason_queue: [0xFF; 16],
            reason_share: [100; 16],
            reta: [0; 64],
            lip_addr: [[0; 4]; 16],
            lip_ctl: [0; 16],
            flash: {
                let mut f = [0; 16];
                f[6] = 60_000;
                f
            },
            flash_dma: 0,
        }
    }
}
