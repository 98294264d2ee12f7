//! BAR0 decode: every register of every block, as `rtl_spec` lays them out, and the doorbells.
//!
//! Unmapped offsets read as 0 and ignore writes, as a PCIe device answers an access to a hole
//! in its BAR. A 64-bit register may be read or written whole, or as two 32-bit halves.

use super::Device;
use rtl_spec::MAGIC;
use rtl_spec::codes::ErrorCode;
use rtl_spec::regs::{
    ALL_BASES, ALL_BLOCKS, ager, control, counters, doorbell_offset, flash, flow_table, identity, interrupts,
    next_hop, ports, punt, ring_id, rings,
};

const DOORBELL_BASE: u32 = doorbell_offset(0);
const DOORBELL_STRIDE: u32 = doorbell_offset(1) - doorbell_offset(0);

/// Splits an array register offset `rel` into (instance, offset of the first instance).
fn array(rel: u32, first: u32, count: u32, stride: u32) -> Option<(usize, u32)> {
    let span = rel.checked_sub(first)?;
    let n = span / stride;
    (n < count).then(|| (n as usize, first + span % stride))
}

impl Device {
    fn locate(offset: u32) -> Option<(u32, u32)> {
        ALL_BLOCKS
            .iter()
            .zip(ALL_BASES)
            .find(|(b, base)| offset >= **base && offset < **base + b.size)
            .map(|(_, base)| (*base, offset - base))
    }

    /// Reads a 32-bit register (or half of a 64-bit one).
    pub fn read32(&mut self, offset: u32) -> u32 {
        let offset = offset & !3;
        self.before_read(offset);
        match self.reg64(offset & !7) {
            Some(v) if offset & 4 != 0 => (v >> 32) as u32,
            Some(v) => v as u32,
            None => self.reg32(offset),
        }
    }

    /// Reads a 64-bit register (or two adjacent 32-bit ones).
    pub fn read64(&mut self, offset: u32) -> u64 {
        let offset = offset & !7;
        self.before_read(offset);
        self.reg64(offset)
            .unwrap_or_else(|| u64::from(self.reg32(offset)) | u64::from(self.reg32(offset + 4)) << 32)
    }

    /// Brings state that is costly to keep current up to date before a read that shows it.
    fn before_read(&mut self, offset: u32) {
        if offset & !7 == (flash::BASE + flash::BOOT_STATUS) & !7 {
            self.flash.refresh_slot_ok();
        }
    }

    /// The value of the 64-bit register starting at `offset`, if there is one.
    fn reg64(&self, offset: u32) -> Option<u64> {
        let (base, rel) = Self::locate(offset)?;
        let cnt = &self.counters;
        let tc = &self.table_counters;
        Some(match (base, rel) {
            // The running image's capabilities (the model implements every one).
            (identity::BASE, identity::CAPS) => self.flash.caps,
            (identity::BASE, identity::BUILD_TIME) => self.cfg.build_time,
            (control::BASE, control::TIMESTAMP) => self.clock.now_ns(),
            (counters::BASE, r) => cnt.get(r)?,
            (flow_table::BASE, flow_table::COMMANDS) => tc.commands,
            (flow_table::BASE, flow_table::INSERTS) => tc.inserts,
            (flow_table::BASE, flow_table::DELETES) => tc.deletes,
            (flow_table::BASE, flow_table::FAILS) => tc.fails,
            (next_hop::BASE, next_hop::BANK_READS) => self.bank.reads,
            (ager::BASE, ager::SCANS) => self.ager.scans,
            (ager::BASE, ager::AGED) => self.ager.aged,
            (ager::BASE, ager::EVICTED) => self.ager.evicted,
            (flash::BASE, flash::DMA_ADDR) => self.regs.flash_dma,
            (ports::BASE, r) => {
                let (n, r) = array(r, ports::PORT_MAC_LO, 8, 0x40)?;
                self.ports.get(n)?.counters.get(r)?
            }
            (rings::BASE, r) => {
                let (n, r) = array(r, rings::RING_BASE, 20, 0x40)?;
                let ring = self.rings.get(n)?;
                match r {
                    rings::RING_BASE => ring.base,
                    rings::RING_BUF_BASE => ring.buf_base,
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    fn reg32(&self, offset: u32) -> u32 {
        let Some((base, rel)) = Self::locate(offset) else { return 0 };
        if rel < 12 {
            let (spec, _) =
                ALL_BLOCKS.iter().zip(ALL_BASES).find(|(_, b)| **b == base).unwrap_or((&ALL_BLOCKS[0], &0));
            return spec.registers[(rel / 4) as usize].reset as u32;
        }
        let on = |b: bool| u32::from(b);
        match (base, rel) {
            (identity::BASE, identity::MAGIC) => MAGIC,
            (identity::BASE, identity::SPEC_VERSION) => self.flash.spec_version,
            (identity::BASE, identity::BUILD_ID) => self.cfg.build_id,
            (identity::BASE, identity::DOORBELL_BASE) => DOORBELL_BASE,
            (identity::BASE, identity::DOORBELL_STRIDE) => DOORBELL_STRIDE,
            (control::BASE, control::CTRL) => on(self.regs.enable),
            (control::BASE, control::STATUS) => 1 | on(self.regs.enable) << 1,
            (control::BASE, control::ERROR) => self.regs.error,
            (control::BASE, control::SCRATCH) => self.regs.scratch,
            (control::BASE, control::RESET_COUNT) => self.reset_count,
            (flow_table::BASE, r) => match r {
                flow_table::RECORDS => self.cfg.records,
                flow_table::BUCKETS => self.cfg.buckets,
                flow_table::SLOTS_PER_BUCKET => super::table::SLOTS,
                flow_table::STASH_SIZE => self.cfg.stash,
                flow_table::RECORD_SIZE => 128,
                flow_table::HASH => rtl_spec::codes::HashId::Crc32c as u32,
                flow_table::SEED_A => self.table.seed_a,
                flow_table::SEED_B => self.table.seed_b,
                flow_table::OCCUPANCY => self.table.occupancy,
                flow_table::INDEX_USED => self.table.index_used,
                flow_table::STASH_USED => self.table.stash_used,
                _ => 0,
            },
            (next_hop::BASE, next_hop::ENTRIES) => self.cfg.next_hops,
            (next_hop::BASE, next_hop::ENTRY_SIZE) => 16,
            (next_hop::BASE, next_hop::COUNTER_SETS) => self.bank.sets.len() as u32,
            (next_hop::BASE, next_hop::COUNTER_SET_SIZE) => size_of::<rtl_spec::formats::CounterSet>() as u32,
            (next_hop::BASE, next_hop::COUNTER_SETS_USED) => self.bank.used(),
            (next_hop::BASE, next_hop::USED) => {
                self.next_hops.iter().filter(|e| e.ctl.valid()).count() as u32
            }
            (ager::BASE, ager::CTRL) => on(self.regs.ager_enable),
            (ager::BASE, ager::TICK_US) => self.regs.tick_us,
            (ager::BASE, ager::SCAN_PERIOD_MS) => self.regs.scan_period_ms,
            (ager::BASE, ager::NOW_TICKS) => self.now_ticks(),
            (flash::BASE, r) => self.flash_reg(r),
            (punt::BASE, r) => self.punt_reg(r),
            (interrupts::BASE, r) => self.irq_reg(r),
            (ports::BASE, ports::COUNT) => self.ports.len() as u32,
            (rings::BASE, rings::STRIDE) | (ports::BASE, ports::STRIDE) => 0x40,
            (ports::BASE, r) => self.port_reg(r),
            (rings::BASE, rings::COUNT) => self.rings.len() as u32,
            (rings::BASE, rings::EXCEPTION_RINGS) => u32::from(self.cfg.exception_rings),
            (rings::BASE, rings::MAX_SIZE_LOG2) => super::rings::MAX_SIZE_LOG2,
            (rings::BASE, r) => self.ring_reg(r),
            _ => 0,
        }
    }

    fn punt_reg(&self, rel: u32) -> u32 {
        let r = &self.regs;
        match rel {
            punt::QUEUES => r.queues,
            punt::LPORT_MASK => r.lport_mask,
            punt::STEER_SEED => r.steer_seed,
            punt::HIT_ACTION => r.hit_action,
            _ => {
                if let Some((n, _)) = array(rel, punt::REASON_QUEUE, 16, 4) {
                    r.reason_queue[n]
                } else if let Some((n, _)) = array(rel, punt::REASON_SHARE, 16, 4) {
                    r.reason_share[n]
                } else if let Some((n, _)) = array(rel, punt::RETA, 64, 4) {
                    r.reta[n]
                } else if let Some((n, w)) = array(rel, punt::LIP_ADDR0, 16, 0x20) {
                    match w {
                        punt::LIP_CTL => r.lip_ctl[n],
                        w if w < punt::LIP_CTL => r.lip_addr[n][((w - punt::LIP_ADDR0) / 4) as usize],
                        _ => 0,
                    }
                } else {
                    0
                }
            }
        }
    }

    fn irq_reg(&self, rel: u32) -> u32 {
        match rel {
            interrupts::VECTORS => super::irq::VECTORS as u32,
            interrupts::SOURCES => self.rings.len() as u32,
            _ => {
                if let Some((s, _)) = array(rel, interrupts::SOURCE_VECTOR, 64, 4) {
                    return self.irq.source_vector[s];
                }
                let Some((v, w)) = array(rel, interrupts::VEC_CTRL, 32, 0x10) else { return 0 };
                let vec = &self.irq.vectors[v];
                match w {
                    interrupts::VEC_CTRL => u32::from(vec.armed),
                    interrupts::VEC_COAL_USEC => vec.coal_usec,
                    interrupts::VEC_COAL_COUNT => vec.coal_count,
                    _ => vec.fired,
                }
            }
        }
    }

    fn port_reg(&self, rel: u32) -> u32 {
        let Some((n, r)) = array(rel, ports::PORT_MAC_LO, 8, 0x40) else { return 0 };
        let Some(p) = self.ports.get(n) else { return 0 };
        match r {
            ports::PORT_MAC_LO => u32::from_le_bytes([p.mac[0], p.mac[1], p.mac[2], p.mac[3]]),
            ports::PORT_MAC_HI => u32::from_le_bytes([p.mac[4], p.mac[5], 0, 0]),
            ports::PORT_CTRL => u32::from(p.enable),
            ports::PORT_STATUS => u32::from(p.link_up()),
            ports::PORT_MTU => p.mtu,
            _ => 0,
        }
    }

    fn ring_reg(&self, rel: u32) -> u32 {
        let Some((n, r)) = array(rel, rings::RING_BASE, 20, 0x40) else { return 0 };
        let Some(ring) = self.rings.get(n) else { return 0 };
        match r {
            rings::RING_SIZE_LOG2 => ring.size_log2,
            rings::RING_ENTRY_SIZE => ring.entry_size,
            rings::RING_CTRL => u32::from(ring.enabled),
            rings::RING_STATUS => {
                let full = !ring.host_produced() && ring.enabled && ring.full();
                u32::from(ring.enabled) | u32::from(full) << 1 | u32::from(ring.config_error) << 2
            }
            rings::RING_PROD => ring.prod,
            rings::RING_CONS => ring.cons,
            rings::RING_BUF_SIZE => ring.buf_size,
            rings::RING_KIND => ring.kind as u32,
            rings::RING_DOORBELL => doorbell_offset(n as u32),
            rings::RING_DROPS => ring.drops,
            _ => 0,
        }
    }

    /// Writes a 64-bit register (or two adjacent 32-bit ones, low first).
    pub fn write64(&mut self, offset: u32, value: u64) {
        self.write32(offset & !7, value as u32);
        self.write32((offset & !7) + 4, (value >> 32) as u32);
    }

    /// Writes a 32-bit register (or half of a 64-bit one), or rings a doorbell.
    pub fn write32(&mut self, offset: u32, value: u32) {
        let offset = offset & !3;
        if offset >= DOORBELL_BASE {
            let page = offset - DOORBELL_BASE;
            if page % DOORBELL_STRIDE == 0 {
                self.doorbell(page / DOORBELL_STRIDE, value);
            }
            return;
        }
        let Some((base, rel)) = Self::locate(offset) else { return };
        let set_half = |old: u64| {
            if rel & 4 == 0 {
                (old & !0xFFFF_FFFF) | u64::from(value)
            } else {
                (old & 0xFFFF_FFFF) | u64::from(value) << 32
            }
        };
        match base {
            control::BASE => match rel {
                control::CTRL => {
                    if u64::from(value) & control::CTRL::RESET.mask() != 0 {
                        self.reset();
                    } else {
                        self.regs.enable = control::CTRL::ENABLE.get(u64::from(value)) != 0;
                    }
                }
                control::ERROR => self.regs.error &= !value,
                control::SCRATCH => self.regs.scratch = value,
                _ => {}
            },
            // Seeds change bucket placement, so they are writable only while the table is empty.
            flow_table::BASE if self.table.occupancy == 0 && self.table.index_used == 0 => match rel {
                flow_table::SEED_A => self.table.seed_a = value,
                flow_table::SEED_B => self.table.seed_b = value,
                _ => {}
            },
            ager::BASE => match rel {
                ager::CTRL => self.regs.ager_enable = value & 1 != 0,
                ager::TICK_US => self.regs.tick_us = value.max(1),
                ager::SCAN_PERIOD_MS => self.regs.scan_period_ms = value.max(1),
                _ => {}
            },
            flash::BASE => self.write_flash(rel, value, set_half),
            punt::BASE => self.write_punt(rel, value),
            interrupts::BASE => self.write_irq(rel, value),
            ports::BASE => self.write_port(rel, value),
            rings::BASE => self.write_ring(rel, value),
            _ => {}
        }
    }

    fn write_flash(&mut self, rel: u32, value: u32, set_half: impl Fn(u64) -> u64) {
        if rel & !4 == flash::DMA_ADDR {
            self.regs.flash_dma = set_half(self.regs.flash_dma);
        } else {
            self.write_flash_reg(rel, value);
        }
    }

    fn write_punt(&mut self, rel: u32, value: u32) {
        let r = &mut self.regs;
        match rel {
            punt::QUEUES => r.queues = value.clamp(1, ring_id::MAX_EXCEPTION),
            punt::LPORT_MASK => r.lport_mask = value & 0xFFFF,
            punt::STEER_SEED => r.steer_seed = value,
            punt::HIT_ACTION => r.hit_action = value & 0b11,
            _ => {
                if let Some((n, _)) = array(rel, punt::REASON_QUEUE, 16, 4) {
                    r.reason_queue[n] = value & 0xFF;
                } else if let Some((n, _)) = array(rel, punt::REASON_SHARE, 16, 4) {
                    r.reason_share[n] = value & 0xFF;
                } else if let Some((n, _)) = array(rel, punt::RETA, 64, 4) {
                    r.reta[n] = value & 0xFF;
                } else if let Some((n, w)) = array(rel, punt::LIP_ADDR0, 16, 0x20) {
                    match w {
                        punt::LIP_CTL => r.lip_ctl[n] = value & 0b11,
                        w if w < punt::LIP_CTL => r.lip_addr[n][((w - punt::LIP_ADDR0) / 4) as usize] = value,
                        _ => {}
                    }
                }
            }
        }
    }

    fn write_irq(&mut self, rel: u32, value: u32) {
        if let Some((s, _)) = array(rel, interrupts::SOURCE_VECTOR, 64, 4) {
            self.irq.source_vector[s] = value & 0x8000_00FF;
            return;
        }
        let Some((v, w)) = array(rel, interrupts::VEC_CTRL, 32, 0x10) else { return };
        match w {
            interrupts::VEC_CTRL if value & 1 != 0 => self.irq_arm(v),
            interrupts::VEC_CTRL => self.irq.vectors[v].armed = false,
            interrupts::VEC_COAL_USEC => self.irq.vectors[v].coal_usec = value,
            interrupts::VEC_COAL_COUNT => self.irq.vectors[v].coal_count = value,
            _ => {}
        }
    }

    fn write_port(&mut self, rel: u32, value: u32) {
        let Some((n, r)) = array(rel, ports::PORT_MAC_LO, 8, 0x40) else { return };
        let Some(p) = self.ports.get_mut(n) else { return };
        let b = value.to_le_bytes();
        match r {
            ports::PORT_MAC_LO => p.mac[..4].copy_from_slice(&b),
            ports::PORT_MAC_HI => p.mac[4..].copy_from_slice(&b[..2]),
            ports::PORT_CTRL => p.enable = value & 1 != 0,
            ports::PORT_MTU => p.mtu = value.clamp(68, 9216),
            _ => {}
        }
    }

    fn write_ring(&mut self, rel: u32, value: u32) {
        let Some((n, r)) = array(rel, rings::RING_BASE, 20, 0x40) else { return };
        let Some(ring) = self.rings.get_mut(n) else { return };
        let half = |old: u64, upper: bool| {
            if upper {
                (old & 0xFFFF_FFFF) | u64::from(value) << 32
            } else {
                (old & !0xFFFF_FFFF) | u64::from(value)
            }
        };
        if r == rings::RING_CTRL {
            let was = ring.enabled;
            let ok = ring.set_enabled(value & 1 != 0);
            if ok && !was && ring.enabled && n as u32 == ring_id::EVENT {
                self.flash_event_ring_enabled();
            }
            if !ok {
                self.regs.error |= control::ERROR::BAD_RING_CONFIG.mask() as u32;
                let ev = rtl_spec::formats::Event {
                    kind: rtl_spec::codes::EventKind::Error.into(),
                    cause: ErrorCode::BadRingConfig.into(),
                    data: zerocopy::little_endian::U32::new(n as u32),
                    ..Default::default()
                };
                self.post_event(ev);
            }
            return;
        }
        if ring.enabled {
            return; // configuration is fixed while the ring runs
        }
        match r {
            rings::RING_BASE => ring.base = half(ring.base, false),
            x if x == rings::RING_BASE + 4 => ring.base = half(ring.base, true),
            rings::RING_BUF_BASE => ring.buf_base = half(ring.buf_base, false),
            x if x == rings::RING_BUF_BASE + 4 => ring.buf_base = half(ring.buf_base, true),
            rings::RING_SIZE_LOG2 => ring.size_log2 = value,
            rings::RING_BUF_SIZE => ring.buf_size = value,
            _ => {}
        }
    }

    fn doorbell(&mut self, ring: u32, value: u32) {
        let Some(r) = self.rings.get_mut(ring as usize) else { return };
        if !r.doorbell(value) {
            return;
        }
        match ring {
            ring_id::COMMAND | ring_id::COMPLETION => self.process_commands(),
            ring_id::INJECT => self.process_injects(),
            _ => {}
        }
    }
}
