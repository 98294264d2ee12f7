//! Bring-up, as SPEC.md's "How a driver discovers and brings up the device" gives it, step by
//! step: identify, reset (or, keeping the table, quiesce), check the scratch register, walk the
//! chain, read the geometry, allocate and enable every ring, program steering; then, once the
//! driver holds its transport, interrupts or polling, the ports and the datapath enabled, and
//! the boot confirmed. [`Nic::bring_up_keeping`] is also what recovery calls.

use super::{Nic, NicConfig, identify, probe};
use crate::error::DriverError;
use crate::link::Link;
use crate::queues::{ExceptionQueue, InjectQueue, Queues, inject_buffer_bytes};
use crate::rings::{Consumer, Producer, RingMem};
use crate::transport::Transport;
use rtl_spec::codes::BlockType;
use rtl_spec::regs::{control, interrupts, ports, punt, ring_id, rings};
use std::time::{Duration, Instant};

/// Stops the device before bring-up programs it: a reset (the known state), or with
/// `preserve_table` only the datapath and the rings stopped, so the flow table, the next hops
/// and the counters stay.
fn quiesce(t: &mut dyn Transport, preserve_table: bool) -> Result<(), DriverError> {
    if preserve_table {
        t.write32(control::BASE + control::CTRL, 0);
        for id in 0..ring_id::EXCEPTION0 + ring_id::MAX_EXCEPTION {
            t.write32(rings::BASE + id * 0x40 + rings::RING_CTRL, 0);
        }
    } else {
        t.reset()?;
        t.write32(control::BASE + control::CTRL, control::CTRL::RESET.mask() as u32);
    }
    Ok(())
}

/// The interrupt vector of ring `ring` (vector = ring id, so each ring wakes its own waiter).
pub(super) fn vector_of(ring: u32) -> u16 {
    ring as u16
}

impl Nic {
    /// Brings the device behind `transport` up.
    pub fn bring_up(transport: Box<dyn Transport>, cfg: NicConfig) -> Result<Nic, DriverError> {
        Self::bring_up_keeping(transport, cfg).map_err(|(e, _)| e)
    }

    /// [`Self::bring_up`], giving the transport back when it fails, so that a recovery can try
    /// again over the same connection (or reconnect it) later.
    pub(super) fn bring_up_keeping(
        mut transport: Box<dyn Transport>,
        cfg: NicConfig,
    ) -> Result<Nic, (DriverError, Box<dyn Transport>)> {
        let (mut nic, exceptions, inject) = match Self::program(transport.as_mut(), cfg) {
            Ok(parts) => parts,
            Err(e) => return Err((e, transport)),
        };
        nic.link = Link::new(transport);
        nic.queues = Some(Queues::new(
            nic.link.clone(),
            exceptions,
            inject,
            &nic.cfg,
            nic.blocks.clone(),
            nic.info.ports.len(),
        ));
        match nic.start() {
            Ok(()) => Ok(nic),
            Err(e) => Err((e, nic.link.retire())),
        }
    }

    /// Identifies, resets and programs the device's rings and steering through `t`; the
    /// returned driver holds no transport yet, and the exception and inject rings come beside
    /// it (they become [`Queues`] once the transport is attached).
    fn program(
        t: &mut dyn Transport,
        cfg: NicConfig,
    ) -> Result<(Nic, Vec<ExceptionQueue>, InjectQueue), DriverError> {
        // Identify before touching anything: a reset written to the wrong device is worse than
        // refusing it.
        identify(t)?;
        quiesce(t, cfg.preserve_table)?;
        let deadline = Instant::now() + Duration::from_millis(100);
        while t.read32(control::BASE + control::STATUS) & 1 == 0 {
            if Instant::now() > deadline {
                return Err(DriverError::BringUp("the device did not come out of reset in 100 ms".into()));
            }
            t.service();
        }
        for pattern in [0x5a5a_a5a5, 0xa5a5_5a5a] {
            t.write32(control::BASE + control::SCRATCH, pattern);
            let got = t.read32(control::BASE + control::SCRATCH);
            if got != pattern {
                return Err(DriverError::BringUp(format!(
                    "SCRATCH reads {got:#x} after writing {pattern:#x}"
                )));
            }
        }
        let (info, blocks) = probe(t)?;
        if cfg.exception_rings == 0 || cfg.exception_rings > info.exception_rings {
            return Err(DriverError::BringUp(format!(
                "{} exception rings asked, the device has {}",
                cfg.exception_rings, info.exception_rings
            )));
        }
        let mut regions = Vec::new();
        let rb = blocks.base(BlockType::Rings)?;
        let mut enable = |t: &mut dyn Transport, id: u32, entry: usize, buf: Option<u32>| {
            let region = t.alloc_dma(entry << cfg.ring_log2)?;
            let r = rb + id * 0x40;
            t.write64(r + rings::RING_BASE, region.iova());
            t.write32(r + rings::RING_SIZE_LOG2, cfg.ring_log2);
            let buffers = match buf {
                Some(size) => {
                    let b = t.alloc_dma((size as usize) << cfg.ring_log2)?;
                    t.write64(r + rings::RING_BUF_BASE, b.iova());
                    t.write32(r + rings::RING_BUF_SIZE, size);
                    Some(b)
                }
                None => None,
            };
            t.write32(r + rings::RING_CTRL, 1);
            if t.read32(r + rings::RING_STATUS) & 1 == 0 {
                return Err(DriverError::BringUp(format!(
                    "ring {id} was refused (RING_STATUS CONFIG_ERROR)"
                )));
            }
            let doorbell = t.read32(r + rings::RING_DOORBELL);
            regions.push(region.clone());
            regions.extend(buffers.clone());
            Ok::<_, DriverError>((RingMem { region, log2: cfg.ring_log2, doorbell }, buffers))
        };
        let (cmd, _) = enable(t, ring_id::COMMAND, 256, None)?;
        let (cpl, _) = enable(t, ring_id::COMPLETION, 64, None)?;
        let (inj, _) = enable(t, ring_id::INJECT, 32, None)?;
        let (evt, _) = enable(t, ring_id::EVENT, 64, None)?;
        let mut exceptions = Vec::new();
        for q in 0..cfg.exception_rings {
            let (mem, buffers) = enable(t, ring_id::EXCEPTION0 + q, 32, Some(cfg.buf_size))?;
            let buffers = buffers.ok_or_else(|| DriverError::BringUp("exception buffers missing".into()))?;
            exceptions.push(ExceptionQueue::new(mem, buffers, cfg.buf_size));
        }
        let inject_buffers = t.alloc_dma(inject_buffer_bytes(cfg.ring_log2))?;
        regions.push(inject_buffers.clone());
        let inject = InjectQueue::new(inj, inject_buffers, rb + ring_id::INJECT * 0x40 + rings::RING_CONS);

        let pu = blocks.base(BlockType::Punt)?;
        t.write32(pu + punt::QUEUES, cfg.exception_rings);
        for n in 0..64 {
            t.write32(pu + punt::RETA + 4 * n, n % cfg.exception_rings);
        }
        // Only bounded reasons are written: a device whose punt block predates the register
        // (version 1.0) keeps its behaviour when nothing is configured.
        for (n, &share) in cfg.punt_share.iter().enumerate().filter(|(_, s)| (1..100).contains(*s)) {
            t.write32(pu + punt::REASON_SHARE + 4 * n as u32, u32::from(share));
        }
        if cfg.forward_fin && info.capability_names.iter().any(|c| c == "TEARDOWN_FORWARD") {
            t.write32(pu + punt::HIT_ACTION, punt::HIT_ACTION::FIN_FORWARD.mask() as u32);
        }

        let nic = Nic {
            cfg,
            info,
            commands: Producer::new(cmd),
            completions: Consumer::new(cpl),
            events: Consumer::new(evt),
            queues: None,
            got_completions: Vec::new(),
            got_events: Vec::new(),
            vectors: Vec::new(),
            outstanding: 0,
            regions,
            blocks,
            link: Link::detached(),
        };
        Ok((nic, exceptions, inject))
    }

    /// The last steps of bring-up, once the driver holds its transport: interrupts, ports and
    /// datapath enabled, boot confirmed.
    fn start(&mut self) -> Result<(), DriverError> {
        if self.cfg.interrupts {
            self.setup_interrupts()?;
        }
        let pb = self.blocks.base(BlockType::Ports)?;
        let mut t = self.link.lock();
        for n in 0..self.info.ports.len() as u32 {
            t.write32(pb + ports::PORT_CTRL + n * 0x40, 1);
        }
        t.write32(control::BASE + control::CTRL, 1);
        drop(t);
        if self.cfg.confirm_boot {
            self.confirm_boot();
        }
        Ok(())
    }

    /// Confirms the device's boot (`FLASH.CONFIRM`): this driver can drive the running image,
    /// so an image on trial is kept. A device without a flash block has nothing to confirm.
    pub fn confirm_boot(&mut self) {
        if let Ok(fb) = self.blocks.base(BlockType::Flash) {
            self.link.lock().write32(fb + rtl_spec::regs::flash::CONFIRM, rtl_spec::regs::FLASH_CONFIRM_KEY);
        }
    }

    fn setup_interrupts(&mut self) -> Result<(), DriverError> {
        let ib = self.blocks.base(BlockType::Interrupts)?;
        let sources = [ring_id::COMPLETION, ring_id::EVENT]
            .into_iter()
            .chain((0..self.cfg.exception_rings).map(|q| ring_id::EXCEPTION0 + q));
        for ring in sources {
            let v = vector_of(ring);
            let fd = self.link.lock().interrupt(v)?;
            let Some(fd) = fd else {
                return Err(DriverError::BringUp(format!(
                    "interrupts asked, but {} has none: use polling",
                    self.link.lock().describe()
                )));
            };
            self.link.lock().write32(ib + interrupts::SOURCE_VECTOR + 4 * ring, 0x8000_0000 | u32::from(v));
            self.link.lock().write32(ib + interrupts::VEC_CTRL + 0x10 * u32::from(v), 1);
            self.vectors.push((ring, fd));
        }
        let rearm =
            |q: u32| Some(ib + interrupts::VEC_CTRL + 0x10 * u32::from(vector_of(ring_id::EXCEPTION0 + q)));
        if let Some(queues) = self.queues.as_mut() {
            for (q, e) in queues.exceptions_mut().iter_mut().enumerate() {
                e.rearm = rearm(q as u32);
            }
        }
        Ok(())
    }
}
