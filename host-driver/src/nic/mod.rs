//! The driver's view of one NIC: the rings it owns, commands with a completion timeout, punted
//! packets, injected packets, events, and reset-and-recover.
//!
//! Bring-up (module `bringup`) follows SPEC.md's "How a driver discovers and brings up the device"
//! step by step, and (unless `NicConfig::confirm_boot` is off) confirms the boot, so an image on
//! trial is kept only when this driver could bring it up.

mod bank;
mod bringup;
mod counters;
mod probe;

pub use bank::CounterBankBuffer;
pub use counters::{DeviceCounters, PortCounters};
pub(crate) use counters::{configure_port, read as read_counters};

pub use probe::{BlockInfo, BlockMap, DeviceInfo, Geometry, PortInfo, identify, probe, walk_chain};

use crate::dma::DmaRegion;
use crate::error::DriverError;
use crate::link::{Link, TransportGuard};
use crate::queues::Queues;
use crate::rings::{Consumer, Producer};
use crate::transport::Transport;
use rtl_spec::codes::BlockType;
use rtl_spec::formats::{Completion, Event, FlowCommand};
use rtl_spec::regs::{control, interrupts, punt, ring_id};
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;

pub use crate::queues::Exception;
use bringup::vector_of;

/// How the driver sets the device up.
#[derive(Clone, Debug)]
#[allow(clippy::struct_excessive_bools)] // independent switches of the bring-up, not a state
pub struct NicConfig {
    /// log2 of the entries of every ring.
    pub ring_log2: u32,
    /// Exception rings to enable (one per slow-path worker).
    pub exception_rings: u32,
    /// Bytes per exception buffer.
    pub buf_size: u32,
    /// Interrupts (eventfds, armed after each drain) instead of busy polling.
    pub interrupts: bool,
    /// How long a command may stay without its completion before the device counts as hung.
    pub command_timeout: Duration,
    /// Bring the device up without resetting it, keeping its flow table (a daemon restart that
    /// adopts the flows the NIC holds, `flow_offload::FlowTable::adopt`). Off by default: a
    /// reset is the known state.
    pub preserve_table: bool,
    /// Confirm the device's boot (`FLASH.CONFIRM`) once bring-up succeeded, so an image on
    /// trial is kept. With `false`, a newly activated image that nobody confirms falls back
    /// to the other slot when its watchdog expires.
    pub confirm_boot: bool,
    /// Per punt reason (`rtl_spec::codes::PuntReason` as index), the percentage of each
    /// exception ring its punts may hold at once (`PUNT.REASON_SHARE`; 100: no bound).
    pub punt_share: [u8; 16],
    /// A FIN on a hit is forwarded by the NIC, which reports it with a flow event
    /// (`PUNT.HIT_ACTION.FIN_FORWARD`), where the device has `TEARDOWN_FORWARD`; otherwise (and
    /// by default) it is punted. The slow path moves a connection's state from either.
    pub forward_fin: bool,
}

impl Default for NicConfig {
    fn default() -> Self {
        NicConfig {
            ring_log2: 10,
            exception_rings: 1,
            buf_size: 2048,
            interrupts: false,
            command_timeout: Duration::from_secs(1),
            preserve_table: false,
            confirm_boot: true,
            punt_share: [100; 16],
            forward_fin: false,
        }
    }
}

/// A brought-up NIC.
///
/// It keeps the command, completion and event rings; the exception and inject rings are
/// [`Queues`] it lends out ([`Self::take_queues`]) or drives itself until then.
pub struct Nic {
    link: Link,
    cfg: NicConfig,
    info: DeviceInfo,
    blocks: BlockMap,
    commands: Producer<FlowCommand>,
    completions: Consumer<Completion>,
    events: Consumer<Event>,
    /// The exception and inject rings, until taken.
    queues: Option<Queues>,
    /// Scratch for reaped entries (no allocation per poll).
    got_completions: Vec<(u32, Completion)>,
    got_events: Vec<(u32, Event)>,
    vectors: Vec<(u32, EventFd)>,
    outstanding: u32,
    regions: Vec<DmaRegion>,
}

impl Nic {
    /// The device's `CONTROL.RESET_COUNT`: resets since power-on. A value other than the one
    /// read after bring-up means the device was reset behind the driver's back (a watchdog,
    /// a firmware fallback, an operator), its rings and tables gone.
    pub fn reset_count(&mut self) -> u32 {
        self.link.lock().read32(control::BASE + control::RESET_COUNT)
    }

    /// Whether the device still looks brought up: ready, enabled, and not reset since
    /// bring-up (`expected_resets` is what [`Self::reset_count`] said then).
    pub fn is_alive(&mut self, expected_resets: u32) -> bool {
        let status = self.link.lock().read32(control::BASE + control::STATUS);
        status & 0b11 == 0b11 && self.reset_count() == expected_resets
    }

    /// How long a command may go without its completion before the device counts as hung.
    pub fn command_timeout(&self) -> Duration {
        self.cfg.command_timeout
    }

    /// Gives the transport back without resetting the device (what a daemon that exits leaves
    /// behind: the NIC keeps forwarding its flows).
    pub fn into_transport(self) -> Box<dyn Transport> {
        self.link.retire()
    }

    /// Lends the exception and inject rings out (once per bring-up: `None` when they were
    /// taken already). After a reset or a reconnect ([`Self::reinit`], [`Self::reconnect`])
    /// the rings are new and the ones taken before are inert: take them again.
    pub fn take_queues(&mut self) -> Option<Queues> {
        self.queues.take()
    }

    /// The configuration the device was brought up with.
    pub fn config(&self) -> &NicConfig {
        &self.cfg
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The transport, for register access the driver does not wrap (locked while the guard
    /// lives: drop it before calling the driver again).
    pub fn transport(&mut self) -> TransportGuard<'_> {
        self.link.lock()
    }

    /// The base of a register block, as discovered.
    pub fn block(&self, t: BlockType) -> Result<u32, DriverError> {
        self.blocks.base(t)
    }

    /// Commands that fit in the command ring now.
    pub fn command_room(&self) -> u32 {
        (1u32 << self.cfg.ring_log2).saturating_sub(self.outstanding)
    }

    /// Queues commands (phases set here); they reach the device at the next [`Self::flush`].
    pub fn push_commands(&mut self, cmds: &[FlowCommand]) -> Result<(), DriverError> {
        self.push_commands_from(cmds.iter())
    }

    /// [`Self::push_commands`] from wherever the caller keeps its commands (no copy into a
    /// slice first).
    pub fn push_commands_from<'a>(
        &mut self,
        cmds: impl ExactSizeIterator<Item = &'a FlowCommand>,
    ) -> Result<(), DriverError> {
        let n = cmds.len();
        if n as u32 > self.command_room() {
            return Err(DriverError::RingFull("command"));
        }
        for c in cmds {
            self.commands.push(*c);
        }
        self.outstanding += n as u32;
        Ok(())
    }

    /// Rings the command doorbell once for everything queued.
    pub fn flush(&mut self) {
        self.commands.flush(&mut *self.link.lock());
    }

    /// Takes the completions that have arrived (at most `max`), in command order.
    pub fn reap(&mut self, out: &mut Vec<Completion>, max: usize) -> usize {
        let mut t = self.link.lock();
        t.service();
        self.got_completions.clear();
        let n = self.completions.poll(&mut *t, &mut self.got_completions, max);
        drop(t);
        self.outstanding = self.outstanding.saturating_sub(n as u32);
        out.extend(self.got_completions.iter().map(|(_, c)| *c));
        if n > 0 {
            self.rearm(ring_id::COMPLETION);
        }
        n
    }

    /// Submits `cmds` (as many at a time as the ring holds, one doorbell per batch) and waits
    /// for all their completions, in order. A device that completes nothing for
    /// `command_timeout` is reported as [`DriverError::CompletionTimeout`].
    pub fn execute(&mut self, cmds: &[FlowCommand]) -> Result<Vec<Completion>, DriverError> {
        let mut out = Vec::with_capacity(cmds.len());
        let mut sent = 0;
        let mut last_progress = Instant::now();
        while out.len() < cmds.len() {
            let room = self.command_room() as usize;
            if sent < cmds.len() && room > 0 {
                let n = room.min(cmds.len() - sent);
                self.push_commands(&cmds[sent..sent + n])?;
                self.flush();
                sent += n;
            }
            let missing = sent - out.len();
            if self.reap(&mut out, missing) > 0 {
                last_progress = Instant::now();
            } else {
                if last_progress.elapsed() > self.cfg.command_timeout {
                    return Err(DriverError::CompletionTimeout {
                        outstanding: self.outstanding,
                        waited_ms: last_progress.elapsed().as_millis() as u64,
                    });
                }
                self.wait(ring_id::COMPLETION, Duration::from_millis(1));
            }
        }
        Ok(out)
    }

    /// Punted packets from exception ring `queue` (at most `max`), while the queues are not
    /// taken ([`Self::take_queues`]); 0 once they are.
    pub fn recv_exceptions(&mut self, queue: usize, out: &mut Vec<Exception>, max: usize) -> usize {
        self.queues.as_mut().map_or(0, |q| q.recv_exceptions(queue, out, max))
    }

    /// Events (at most `max`).
    pub fn recv_events(&mut self, out: &mut Vec<Event>, max: usize) -> usize {
        let mut t = self.link.lock();
        t.service();
        self.got_events.clear();
        let n = self.events.poll(&mut *t, &mut self.got_events, max);
        drop(t);
        out.extend(self.got_events.iter().map(|(_, e)| *e));
        if n > 0 {
            self.rearm(ring_id::EVENT);
        }
        n
    }

    /// Queues a frame to send unchanged on `port`; it leaves at [`Self::flush_injects`]. Only
    /// while the queues are not taken ([`Self::take_queues`]).
    pub fn inject(&mut self, port: u8, frame: &[u8]) -> Result<(), DriverError> {
        match self.queues.as_mut() {
            Some(q) => q.inject(port, frame),
            None => Err(DriverError::BringUp("the inject ring was lent out (Nic::take_queues)".into())),
        }
    }

    /// Sends every queued inject with one doorbell (while the queues are not taken).
    pub fn flush_injects(&mut self) {
        if let Some(q) = self.queues.as_mut() {
            q.flush_injects();
        }
    }

    /// Waits until ring `ring` may have something, at most `timeout`: on its eventfd with
    /// interrupts, by a short sleep when polling.
    pub fn wait(&mut self, ring: u32, timeout: Duration) {
        self.link.lock().service();
        match self.vectors.iter().find(|(r, _)| *r == ring) {
            Some((_, fd)) => {
                let mut pfd = libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
                // SAFETY: `pfd` is a valid pollfd for the duration of the call; nfds is 1.
                unsafe { libc::poll(&raw mut pfd, 1, ms) };
                let _ = fd.read();
            }
            None => std::thread::sleep(timeout.min(Duration::from_micros(100))),
        }
    }

    /// Waits until any ring with an interrupt (completions, events, every exception ring) may
    /// have something, at most `timeout`; returns whether an interrupt fired. Without
    /// interrupts it returns false at once: the caller polls.
    pub fn wait_any(&mut self, timeout: Duration) -> bool {
        self.link.lock().service();
        if self.vectors.is_empty() {
            return false;
        }
        let mut fds: Vec<libc::pollfd> = self
            .vectors
            .iter()
            .map(|(_, fd)| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        for (_, fd) in &self.vectors {
            let _ = fd.read();
        }
        n > 0
    }

    /// Whether the device was brought up with interrupts.
    pub fn has_interrupts(&self) -> bool {
        !self.vectors.is_empty()
    }

    /// Re-arms the vector of `ring` after draining it (interrupt mode only).
    fn rearm(&mut self, ring: u32) {
        if self.vectors.iter().any(|(r, _)| *r == ring) {
            if let Ok(ib) = self.blocks.base(BlockType::Interrupts) {
                self.link.lock().write32(ib + interrupts::VEC_CTRL + 0x10 * u32::from(vector_of(ring)), 1);
            }
        }
    }

    /// Resets the device and brings it up again with the same configuration: the recovery path
    /// after a completion timeout. The flow table is empty afterwards; the caller (flow-offload)
    /// rewrites it from its shadow.
    pub fn recover(mut self) -> Result<Nic, DriverError> {
        self.reinit()?;
        Ok(self)
    }

    /// [`Self::recover`] in place. If the bring-up fails, the `Nic` is left detached from its
    /// device: every register reads all-ones (as a PCI device that fell off the bus) and the
    /// error says why; a later `reinit` cannot help, the transport is gone.
    pub fn reinit(&mut self) -> Result<(), DriverError> {
        for r in std::mem::take(&mut self.regions) {
            self.link.lock().free_dma(&r)?;
        }
        self.bring_up_again()
    }

    /// Whether the way to the device is gone ([`Transport::is_broken`]).
    pub fn transport_broken(&self) -> bool {
        self.link.lock().is_broken()
    }

    /// Reaches the device again over a new connection ([`Transport::reconnect`]: a restarted
    /// model) and brings it up from scratch with the same configuration and steering. The old
    /// connection's DMA regions are dropped, not unmapped: the device that knew them is gone.
    pub fn reconnect(&mut self) -> Result<(), DriverError> {
        self.link.lock().reconnect()?;
        self.regions.clear();
        self.bring_up_again()
    }

    fn bring_up_again(&mut self) -> Result<(), DriverError> {
        // The old rings go with the old link: queues lent over it turn inert.
        let steering = self.link.lock().steering();
        let transport = self.link.retire();
        // A recovery starts from a reset device whatever the first bring-up did: the table is
        // rewritten from the shadow, and a hung device must be reset to answer again.
        let cfg = NicConfig { preserve_table: false, ..self.cfg.clone() };
        match Nic::bring_up_keeping(transport, cfg) {
            Ok(nic) => *self = nic,
            Err((e, transport)) => {
                // Keep the connection (and this driver's configuration) for the next attempt,
                // over a link of its own: no ring is built over it yet.
                self.link = Link::new(transport);
                if let Some((lips, mask)) = &steering {
                    self.link.lock().remember_steering(lips, *mask);
                }
                self.queues = None;
                self.vectors.clear();
                return Err(e);
            }
        }
        if let Some((lips, mask)) = steering {
            self.set_lip_steering(&lips, mask)?;
        }
        Ok(())
    }

    /// Steers punted packets to the worker that owns them: a packet to one of `lips` goes to
    /// exception ring `dst_port & lport_mask` (that worker owns the port slice), every other
    /// packet by the symmetric hash. At most 16 addresses (the LIP filter's size); kept across
    /// [`Self::reinit`].
    pub fn set_lip_steering(
        &mut self,
        lips: &[std::net::IpAddr],
        lport_mask: u32,
    ) -> Result<(), DriverError> {
        let mut t = self.link.lock();
        set_lip_steering(&mut *t, &self.blocks, self.cfg.exception_rings, lips, lport_mask)?;
        t.remember_steering(lips, lport_mask);
        Ok(())
    }
}

/// Programs the LIP filter and the lport mask of a device with `exception_rings` rings enabled
/// (see [`Nic::set_lip_steering`]).
pub(crate) fn set_lip_steering(
    t: &mut dyn Transport,
    blocks: &BlockMap,
    exception_rings: u32,
    lips: &[std::net::IpAddr],
    lport_mask: u32,
) -> Result<(), DriverError> {
    const LIP_FILTER: u32 = 16;
    if lips.len() > LIP_FILTER as usize {
        return Err(DriverError::BringUp(format!(
            "{} local addresses: the NIC's LIP filter holds {LIP_FILTER}",
            lips.len()
        )));
    }
    if lport_mask >= exception_rings.next_power_of_two() {
        return Err(DriverError::BringUp(format!(
            "lport mask {lport_mask:#x} names rings beyond the {exception_rings} enabled"
        )));
    }
    let pu = blocks.base(BlockType::Punt)?;
    t.write32(pu + punt::LPORT_MASK, lport_mask);
    for n in 0..LIP_FILTER {
        let e = pu + 0x20 * n;
        let Some(addr) = lips.get(n as usize) else {
            t.write32(e + punt::LIP_CTL, 0);
            continue;
        };
        let (bytes, v6) = match addr {
            std::net::IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (b, false)
            }
            std::net::IpAddr::V6(a) => (a.octets(), true),
        };
        for (w, reg) in
            [punt::LIP_ADDR0, punt::LIP_ADDR1, punt::LIP_ADDR2, punt::LIP_ADDR3].into_iter().enumerate()
        {
            let word = u32::from_le_bytes(bytes[w * 4..w * 4 + 4].try_into().unwrap_or([0; 4]));
            t.write32(e + reg, word);
        }
        t.write32(e + punt::LIP_CTL, 1 | (u32::from(v6) << 1));
    }
    Ok(())
}
