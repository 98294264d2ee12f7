//! The flash controller: the `FLASH` register block's operations (erase, program, read, verify,
//! activate), the confirmation, the boot procedure that picks a slot and falls back, and the
//! confirmation watchdog. The medium and the image checks are in [`crate::flash`].
//!
//! Boot (SPEC.md, "Firmware images and the flash"): at power-on ([`Device::new`],
//! [`Device::with_flash`]) and at a reset when `ACTIVE` differs from `BOOTED`. Operations run
//! synchronously: `STATUS.BUSY` is never seen set, `DONE` is set when the `CMD` write returns.

use super::Device;
use crate::device::ModelConfig;
use crate::flash::{self as nvm, Flash, FlashState, SLOTS};
use rtl_spec::codes::{EventKind, FlashEvent, FlashOp, FlashResult};
use rtl_spec::formats::{Event, FLASH_BOOT_LIMIT, FLASH_SLOT_SIZE, IMAGE_HEADER_SIZE, IMAGE_MAX_PAYLOAD};
use rtl_spec::regs::{FLASH_CONFIRM_KEY, flash, ring_id};
use zerocopy::little_endian::{U32, U64};

/// `BOOTED` when the factory image runs.
const FACTORY: u32 = u32::MAX;

/// The controller's state beyond the plain registers (the boot status bits are kept as they
/// are named in `BOOT_STATUS`).
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct FlashCtl {
    pub store: Flash,
    /// The configuration of the factory image in ROM.
    pub factory: ModelConfig,
    /// The state area, as last read or written.
    pub state: FlashState,
    /// The slot the running image came from; `None`: the factory image.
    pub booted: Option<usize>,
    pub fell_back: bool,
    pub unconfirmed: bool,
    pub failed_check: u8,
    pub confirmed: bool,
    /// This boot is a trial (the image was activated and is not confirmed).
    pub trial: bool,
    /// The boot count of the running trial, for a re-activation of the booted slot.
    pub trial_boots: u8,
    pub boot_ns: u64,
    pub slot_ok: [Option<bool>; SLOTS],
    /// The boot event, held until the event ring is enabled.
    pub held_event: Option<Event>,
    /// The running image's `SPEC_VERSION` and `CAPS`.
    pub spec_version: u32,
    pub caps: u64,
}

impl FlashCtl {
    pub fn new(store: Flash, factory: ModelConfig) -> Self {
        FlashCtl {
            state: store.state(),
            store,
            factory,
            booted: None,
            fell_back: false,
            unconfirmed: false,
            failed_check: 0,
            confirmed: false,
            trial: false,
            trial_boots: 0,
            boot_ns: 0,
            slot_ok: [None; SLOTS],
            held_event: None,
            spec_version: rtl_spec::SPEC_VERSION,
            caps: rtl_spec::image::model_caps(),
        }
    }

    /// The boot checks of slot `slot`, with the result of `nvm::check` on the whole slot. The
    /// payload is read only for a header that passes its own checks and whose length could fit
    /// (a longer one fails on the header alone): the length field of an erased slot is all ones,
    /// and reading header and payload as it says copied the whole 4 MiB slot for every check of
    /// an erased slot (every `BOOT_STATUS` read after a write) only to find the header erased.
    fn check(&self, slot: usize) -> Result<nvm::BootImage, nvm::ImageFault> {
        let head = self.store.slot_prefix(slot, IMAGE_HEADER_SIZE);
        let len = nvm::check_header(&head)?.payload_len.get();
        if len > IMAGE_MAX_PAYLOAD {
            return nvm::check(&head);
        }
        nvm::check(&self.store.slot_prefix(slot, IMAGE_HEADER_SIZE + len as usize))
    }

    fn write_state(&mut self, state: FlashState) {
        if let Err(e) = self.store.write_state(state) {
            tracing::error!(error = %e, "writing the flash state area failed");
        }
        self.state = state;
    }

    /// Picks the slot to boot and loads it. `watchdog`: the previous boot's trial expired (the
    /// state already names the other slot). Returns the configuration to run.
    fn boot(&mut self, now_ns: u64, watchdog: bool) -> ModelConfig {
        let st = self.store.state();
        let limit_hit = st.pending && u32::from(st.boots) >= FLASH_BOOT_LIMIT;
        let active = usize::from(st.active);
        let order = if limit_hit { [1 - active, active] } else { [active, 1 - active] };
        let blank = (0..SLOTS).all(|s| self.store.slot_prefix(s, 8) == [0xFF; 8]);
        let mut failed_check = 0;
        let mut chosen = None;
        for (i, slot) in order.into_iter().enumerate() {
            match self.check(slot) {
                Ok(img) => {
                    chosen = Some((slot, img));
                    break;
                }
                Err(f) => {
                    if i == 0 && !limit_hit {
                        failed_check = u8::from(f.check);
                    }
                    tracing::warn!(slot, error = %f, "flash slot fails its boot check");
                }
            }
        }
        self.slot_ok = [None; SLOTS];
        self.failed_check = failed_check;
        self.unconfirmed = watchdog || limit_hit;
        self.confirmed = false;
        self.trial = false;
        self.trial_boots = 0;
        self.boot_ns = now_ns;
        #[allow(clippy::single_match_else)]
        let (cfg, event) = match chosen {
            Some((slot, img)) => {
                self.fell_back = watchdog || slot != active;
                if slot != active || (limit_hit && st.pending) {
                    // Fallen back (or nothing else to boot): the booted slot is active, settled.
                    self.write_state(FlashState { active: slot as u8, pending: false, boots: 0 });
                } else if st.pending {
                    let boots = st.boots.saturating_add(1);
                    self.write_state(FlashState { boots, ..st });
                    self.trial = true;
                    self.trial_boots = boots;
                } else {
                    self.state = st;
                }
                self.booted = Some(slot);
                self.spec_version = img.header.spec_version.get();
                self.caps = img.header.caps.get();
                let cause = if self.fell_back { FlashEvent::FellBack } else { FlashEvent::Booted };
                (img.config, (cause, slot as u32))
            }
            None => {
                self.fell_back = !blank;
                self.state = st;
                self.booted = None;
                self.spec_version = rtl_spec::SPEC_VERSION;
                self.caps = rtl_spec::image::model_caps();
                let cause = if self.fell_back { FlashEvent::FellBack } else { FlashEvent::Booted };
                (self.factory.clone(), (cause, FACTORY))
            }
        };
        tracing::info!(booted = ?self.booted, fell_back = self.fell_back, build_id = cfg.build_id, "flash boot");
        // Only a boot worth telling the host about sends an event: a fallback, or the first boots
        // of a newly activated image. A settled image booting as usual sends none.
        self.held_event = (self.fell_back || self.trial).then(|| Event {
            kind: EventKind::Flash.into(),
            cause: event.0.into(),
            timestamp: U64::new(now_ns),
            data: U32::new(event.1),
            ..Event::default()
        });
        cfg
    }

    /// Whether the next reset boots again.
    pub fn reboot_due(&self) -> bool {
        self.booted != Some(usize::from(self.state.active))
    }

    /// Checks the slots whose validity is unknown (after a write), for `BOOT_STATUS`.
    pub fn refresh_slot_ok(&mut self) {
        for s in 0..SLOTS {
            if self.slot_ok[s].is_none() {
                self.slot_ok[s] = Some(self.check(s).is_ok());
            }
        }
    }

    fn boot_status(&self) -> u32 {
        use flash::BOOT_STATUS as B;
        let bit = |b: bool, f: rtl_spec::Bits| if b { f.mask() as u32 } else { 0 };
        bit(self.fell_back, B::FELL_BACK)
            | bit(self.confirmed, B::CONFIRMED)
            | bit(self.slot_ok[0] == Some(true), B::SLOT0_OK)
            | bit(self.slot_ok[1] == Some(true), B::SLOT1_OK)
            | bit(self.booted.is_none(), B::FACTORY)
            | bit(self.fell_back && self.unconfirmed, B::UNCONFIRMED)
            | bit(self.trial && !self.confirmed, B::TRIAL)
            | B::FAILED_CHECK.set(0, u64::from(self.failed_check)) as u32
    }
}

/// Index of a flash register in `Regs::flash`.
const fn idx(reg: u32) -> usize {
    (reg / 4 - 4) as usize
}

impl Device {
    /// Boots from the flash (power-on or a reset with a new active slot) and takes the booted
    /// image's geometry.
    pub(super) fn flash_boot(&mut self, watchdog: bool) {
        let now = self.clock.now_ns();
        self.cfg = self.flash.boot(now, watchdog);
    }

    /// Reads a flash register (32-bit).
    pub(super) fn flash_reg(&self, rel: u32) -> u32 {
        let f = &self.flash;
        match rel {
            flash::SLOT_COUNT => SLOTS as u32,
            flash::SLOT_SIZE => FLASH_SLOT_SIZE,
            flash::ACTIVE => u32::from(f.state.active),
            flash::BOOTED => f.booted.map_or(FACTORY, |s| s as u32),
            flash::BOOT_STATUS => self.flash.boot_status(),
            flash::IMAGE_BUILD_ID => self.cfg.build_id,
            flash::BOOT_TRIES if f.state.pending => u32::from(f.state.boots),
            flash::BOOT_LIMIT => FLASH_BOOT_LIMIT,
            flash::CONFIRM_TIMEOUT_MS | flash::OFFSET | flash::LENGTH | flash::SLOT | flash::STATUS => {
                self.regs.flash[idx(rel)]
            }
            _ => 0,
        }
    }

    /// Writes a flash register (32-bit; `DMA_ADDR` halves are handled by the caller).
    pub(super) fn write_flash_reg(&mut self, rel: u32, value: u32) {
        match rel {
            flash::CONFIRM_TIMEOUT_MS | flash::OFFSET | flash::LENGTH | flash::SLOT => {
                self.regs.flash[idx(rel)] = value;
            }
            flash::CONFIRM if value == FLASH_CONFIRM_KEY => self.flash_confirm(),
            flash::CMD => {
                let op = flash::CMD::OP.get(u64::from(value)) as u8;
                let (result, detail) = self.flash_op(op);
                let status = flash::STATUS::DONE.mask()
                    | flash::STATUS::RESULT.set(0, u64::from(u8::from(result)))
                    | flash::STATUS::DETAIL.set(0, u64::from(detail));
                self.regs.flash[idx(flash::STATUS)] = status as u32;
                if self.rings[ring_id::EVENT as usize].enabled {
                    self.post_event(Event {
                        kind: EventKind::Flash.into(),
                        cause: FlashEvent::OpDone.into(),
                        timestamp: U64::new(self.clock.now_ns()),
                        data: U32::new(status as u32),
                        ..Event::default()
                    });
                }
            }
            _ => {}
        }
    }

    fn flash_confirm(&mut self) {
        let f = &mut self.flash;
        f.confirmed = true;
        if f.trial {
            f.trial = false;
            let st = f.state;
            if f.booted == Some(usize::from(st.active)) && st.pending {
                f.write_state(FlashState { active: st.active, pending: false, boots: 0 });
            }
        }
    }

    /// Called when the event ring is enabled: the held boot event goes first.
    pub(super) fn flash_event_ring_enabled(&mut self) {
        if let Some(ev) = self.flash.held_event.take() {
            self.post_event(ev);
        }
    }

    /// The watchdog: a trial boot not confirmed in `CONFIRM_TIMEOUT_MS` falls back now.
    pub(super) fn flash_watchdog(&mut self, now_ns: u64) {
        let f = &self.flash;
        let timeout_ms = self.regs.flash[idx(flash::CONFIRM_TIMEOUT_MS)];
        if !f.trial || f.confirmed || timeout_ms == 0 {
            return;
        }
        if now_ns.saturating_sub(f.boot_ns) < u64::from(timeout_ms) * 1_000_000 {
            return;
        }
        let Some(booted) = f.booted else { return };
        tracing::warn!(slot = booted, timeout_ms, "trial boot not confirmed in time: falling back");
        self.flash.write_state(FlashState { active: (1 - booted) as u8, pending: false, boots: 0 });
        self.flash_boot(true);
        self.reset_state();
        self.reset_count = self.reset_count.wrapping_add(1);
    }

    /// Makes the booted slot active again when `slot` (about to be written) is the active one.
    fn cancel_activation_of(&mut self, slot: usize) {
        let f = &mut self.flash;
        if usize::from(f.state.active) == slot && f.booted != Some(slot) {
            let active = f.booted.unwrap_or(1 - slot) as u8;
            let (pending, boots) = if f.trial { (true, f.trial_boots) } else { (false, 0) };
            f.write_state(FlashState { active, pending, boots });
        }
    }

    fn flash_op(&mut self, op: u8) -> (FlashResult, u16) {
        let slot = self.regs.flash[idx(flash::SLOT)] as usize;
        let offset = self.regs.flash[idx(flash::OFFSET)] as usize;
        let length = self.regs.flash[idx(flash::LENGTH)] as usize;
        let dma = self.regs.flash_dma;
        let Ok(op) = FlashOp::try_from(op) else { return (FlashResult::BadOp, 0) };
        if slot >= SLOTS {
            return (FlashResult::BadSlot, 0);
        }
        let in_range = offset.checked_add(length).is_some_and(|end| end <= FLASH_SLOT_SIZE as usize);
        let media = |r: std::io::Result<()>| match r {
            Ok(()) => (FlashResult::Ok, 0),
            Err(e) => {
                tracing::error!(error = %e, "flash medium write failed");
                (FlashResult::MediaError, 0)
            }
        };
        match op {
            FlashOp::Erase | FlashOp::Program if self.flash.booted == Some(slot) => {
                (FlashResult::SlotInUse, 0)
            }
            FlashOp::Program | FlashOp::Read if !in_range => (FlashResult::BadRange, 0),
            FlashOp::Erase => {
                self.cancel_activation_of(slot);
                self.flash.slot_ok[slot] = None;
                media(self.flash.store.erase(slot))
            }
            FlashOp::Program => {
                let mut buf = vec![0u8; length];
                if self.mem.read(dma, &mut buf).is_err() {
                    return (FlashResult::DmaError, 0);
                }
                if !self.flash.store.is_erased(slot, offset, length) {
                    return (FlashResult::NotErased, 0);
                }
                self.cancel_activation_of(slot);
                self.flash.slot_ok[slot] = None;
                media(self.flash.store.program(slot, offset, &buf))
            }
            FlashOp::Read => {
                let mut buf = vec![0u8; length];
                self.flash.store.read(slot, offset, &mut buf);
                if self.mem.write(dma, &buf).is_err() {
                    return (FlashResult::DmaError, 0);
                }
                (FlashResult::Ok, 0)
            }
            FlashOp::Verify => match self.flash.check(slot) {
                Ok(_) => (FlashResult::Ok, 0),
                Err(f) => (FlashResult::BadImage, u16::from(u8::from(f.check))),
            },
            FlashOp::Activate => {
                if let Err(f) = self.flash.check(slot) {
                    return (FlashResult::BadImage, u16::from(u8::from(f.check)));
                }
                if let Err(e) = self.flash.store.sync() {
                    return media(Err(e));
                }
                let f = &mut self.flash;
                let state = if f.booted == Some(slot) {
                    let (pending, boots) = if f.trial { (true, f.trial_boots) } else { (false, 0) };
                    FlashState { active: slot as u8, pending, boots }
                } else {
                    FlashState { active: slot as u8, pending: true, boots: 0 }
                };
                f.write_state(state);
                (FlashResult::Ok, 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtl_spec::codes::ImageCheck;
    use rtl_spec::formats::ImageHeader;
    use zerocopy::IntoBytes;

    /// The controller's check of a slot, which reads the payload only past the header's checks,
    /// gives what the boot checks give on the whole 4 MiB slot, whatever stops them.
    #[test]
    fn a_slot_check_reads_the_payload_only_when_needed_and_agrees_with_the_whole_slots() {
        let cfg = ModelConfig::small(16);
        let good = nvm::factory_image(&cfg);
        let payload = &good[IMAGE_HEADER_SIZE..];
        let edited = |edit: &dyn Fn(&mut ImageHeader)| {
            let mut h = rtl_spec::image::header_of(&good).unwrap();
            edit(&mut h);
            [h.as_bytes(), payload].concat()
        };
        let cases: Vec<(Vec<u8>, Option<ImageCheck>)> = vec![
            (Vec::new(), Some(ImageCheck::Header)), // erased
            (good.clone(), None),
            (edited(&|h| h.magic = *b"NOTSLUIC"), Some(ImageCheck::Header)),
            (edited(&|h| h.format_version = 2.into()), Some(ImageCheck::Header)),
            (edited(&|h| h.payload_len = u32::MAX.into()), Some(ImageCheck::Truncated)),
            (edited(&|h| h.payload_len = (IMAGE_MAX_PAYLOAD + 1).into()), Some(ImageCheck::Truncated)),
            (edited(&|h| h.payload_len = IMAGE_MAX_PAYLOAD.into()), Some(ImageCheck::Crc32)),
            (good[..IMAGE_HEADER_SIZE + 3].to_vec(), Some(ImageCheck::Crc32)), // cut: the rest erased
            (edited(&|h| h.build_id = 7.into()), Some(ImageCheck::Sha256)),
        ];
        for (n, (image, want)) in cases.into_iter().enumerate() {
            let mut store = Flash::blank();
            if !image.is_empty() {
                store.program(1, 0, &image).unwrap();
            }
            let mut whole = vec![0u8; FLASH_SLOT_SIZE as usize];
            store.read(1, 0, &mut whole);
            let ctl = FlashCtl::new(store, cfg.clone());
            let got = ctl.check(1).map(|b| b.config);
            assert_eq!(got, nvm::check(&whole).map(|b| b.config), "case {n}");
            assert_eq!(got.err().map(|f| f.check), want, "case {n}");
        }
    }
}
