//! The flash controller through its registers only, as a driver sees it: programming a slot
//! by DMA, read-back, verify, activate, boot of the new image, confirmation, the watchdog and
//! the boot limit, fallback from a corrupt slot, a blank flash, and power cut mid-write.

use rtl_spec::codes::{EventKind, FlashEvent, FlashOp, FlashResult, ImageCheck};
use rtl_spec::formats::Event;
use rtl_spec::regs::{FLASH_CONFIRM_KEY, control, flash, flow_table, identity, ring_id, rings};
use sim_model::clock::ManualClock;
use sim_model::device::{Device, ModelConfig};
use sim_model::flash::{Flash, factory_image};
use sim_model::mem::{DmaMemory, RegionMemory};
use std::sync::Arc;
use zerocopy::FromBytes;

const BUF: u64 = 0x1000_0000;
const BUF_LEN: usize = 64 * 1024;
const EVENTS: u64 = 0x2000_0000;
const F: u32 = flash::BASE;

struct Rig {
    dev: Device,
    mem: Arc<RegionMemory>,
    clock: Arc<ManualClock>,
}

fn cfg(build_id: u32, records: u32) -> ModelConfig {
    ModelConfig { build_id, build_time: 1_700_000_000, ..ModelConfig::small(records) }
}

fn rig_with(flash: Flash) -> Rig {
    let mem = Arc::new(RegionMemory::new());
    assert!(mem.map(BUF, BUF_LEN));
    assert!(mem.map(EVENTS, 64 * 16));
    let clock = Arc::new(ManualClock::new(1));
    let dev = Device::with_flash(flash, cfg(0xFAC7_0001, 256), mem.clone(), clock.clone()).unwrap();
    Rig { dev, mem, clock }
}

/// A card from the factory: slot 0 holds build 0x0000_0001.
fn rig() -> Rig {
    rig_with(Flash::with_image(&factory_image(&cfg(1, 1024))))
}

impl Rig {
    fn reg(&mut self, r: u32) -> u32 {
        self.dev.read32(F + r)
    }

    fn op(&mut self, op: FlashOp, slot: u32, offset: u32, len: u32) -> (FlashResult, u32) {
        self.dev.write32(F + flash::SLOT, slot);
        self.dev.write32(F + flash::OFFSET, offset);
        self.dev.write32(F + flash::LENGTH, len);
        self.dev.write64(F + flash::DMA_ADDR, BUF);
        self.dev.write32(F + flash::CMD, u32::from(u8::from(op)));
        let st = u64::from(self.reg(flash::STATUS));
        assert_eq!(flash::STATUS::DONE.get(st), 1);
        let result = FlashResult::try_from(flash::STATUS::RESULT.get(st) as u8).unwrap();
        (result, flash::STATUS::DETAIL.get(st) as u32)
    }

    /// Erase + program in 64 KiB chunks + read back + verify; returns the first failure.
    fn write_slot(&mut self, slot: u32, image: &[u8]) -> Result<(), (FlashResult, u32)> {
        let ok = |r: (FlashResult, u32)| if r.0 == FlashResult::Ok { Ok(()) } else { Err(r) };
        ok(self.op(FlashOp::Erase, slot, 0, 0))?;
        for (i, chunk) in image.chunks(BUF_LEN).enumerate() {
            self.mem.write(BUF, chunk).unwrap();
            ok(self.op(FlashOp::Program, slot, (i * BUF_LEN) as u32, chunk.len() as u32))?;
        }
        for (i, chunk) in image.chunks(BUF_LEN).enumerate() {
            ok(self.op(FlashOp::Read, slot, (i * BUF_LEN) as u32, chunk.len() as u32))?;
            let mut back = vec![0u8; chunk.len()];
            self.mem.read(BUF, &mut back).unwrap();
            if back != chunk {
                return Err((FlashResult::Ok, u32::MAX)); // read-back differs
            }
        }
        ok(self.op(FlashOp::Verify, slot, 0, 0))
    }

    fn reset(&mut self) {
        self.dev.write32(control::BASE + control::CTRL, control::CTRL::RESET.mask() as u32);
    }

    fn build_id(&mut self) -> u32 {
        self.dev.read32(identity::BASE + identity::BUILD_ID)
    }

    fn status(&mut self) -> u64 {
        u64::from(self.reg(flash::BOOT_STATUS))
    }

    /// Enables the event ring and returns what is on it.
    fn events(&mut self) -> Vec<Event> {
        let r = rings::BASE + ring_id::EVENT * 0x40;
        self.dev.write64(r + rings::RING_BASE, EVENTS);
        self.dev.write32(r + rings::RING_SIZE_LOG2, 4);
        self.dev.write32(r + rings::RING_CTRL, 1);
        let prod = self.dev.read32(r + rings::RING_PROD);
        (0..prod)
            .map(|i| {
                let mut b = [0u8; 64];
                self.mem.read(EVENTS + u64::from(i) * 64, &mut b).unwrap();
                Event::read_from_bytes(&b).unwrap()
            })
            .collect()
    }

    /// Power off and on again: the flash as it is, a new device.
    fn power_cycle(self) -> Rig {
        rig_with(Flash::from_bytes(&self.dev.flash().to_bytes()))
    }
}

#[test]
fn a_new_image_is_written_activated_booted_on_trial_and_confirmed() {
    let mut r = rig();
    assert_eq!((r.reg(flash::ACTIVE), r.reg(flash::BOOTED), r.build_id()), (0, 0, 1));
    assert_eq!(
        r.dev.read64(identity::BASE + identity::CAPS) & identity::CAPS::FLASH.mask(),
        identity::CAPS::FLASH.mask()
    );
    let image = factory_image(&cfg(0x0000_0002, 4096));
    r.write_slot(1, &image).unwrap();
    assert_eq!(flash::BOOT_STATUS::SLOT1_OK.get(r.status()), 1);
    assert_eq!(r.op(FlashOp::Activate, 1, 0, 0).0, FlashResult::Ok);
    assert_eq!((r.reg(flash::ACTIVE), r.reg(flash::BOOTED), r.build_id()), (1, 0, 1), "for the next reset");
    r.reset();
    assert_eq!((r.reg(flash::ACTIVE), r.reg(flash::BOOTED)), (1, 1));
    assert_eq!(r.build_id(), 2);
    assert_eq!(r.reg(flash::IMAGE_BUILD_ID), 2);
    assert_eq!(r.dev.read32(flow_table::BASE + flow_table::RECORDS), 4096, "the image's geometry");
    let st = r.status();
    assert_eq!((flash::BOOT_STATUS::TRIAL.get(st), flash::BOOT_STATUS::FELL_BACK.get(st)), (1, 0));
    assert_eq!(r.reg(flash::BOOT_TRIES), 1);
    let ev = r.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].kind, ev[0].cause, ev[0].data.get()),
        (EventKind::Flash as u8, FlashEvent::Booted as u8, 1)
    );
    // A reset that does not change the slot keeps the image and its trial.
    r.reset();
    assert_eq!((r.build_id(), r.reg(flash::BOOT_TRIES)), (2, 1));
    r.dev.write32(F + flash::CONFIRM, 0x1234);
    assert_eq!(flash::BOOT_STATUS::CONFIRMED.get(r.status()), 0, "a wrong key is ignored");
    r.dev.write32(F + flash::CONFIRM, FLASH_CONFIRM_KEY);
    let st = r.status();
    assert_eq!((flash::BOOT_STATUS::CONFIRMED.get(st), flash::BOOT_STATUS::TRIAL.get(st)), (1, 0));
    assert_eq!(r.reg(flash::BOOT_TRIES), 0);
    // Confirmed images survive power cycles.
    let mut r = r.power_cycle().power_cycle().power_cycle().power_cycle();
    assert_eq!((r.reg(flash::ACTIVE), r.build_id()), (1, 2));
    assert_eq!(flash::BOOT_STATUS::FELL_BACK.get(r.status()), 0);
}

#[test]
fn operations_refuse_bad_requests_and_the_booted_slot() {
    let mut r = rig();
    assert_eq!(r.op(FlashOp::Erase, 0, 0, 0).0, FlashResult::SlotInUse);
    assert_eq!(r.op(FlashOp::Program, 0, 0, 16).0, FlashResult::SlotInUse);
    assert_eq!(r.op(FlashOp::Erase, 2, 0, 0).0, FlashResult::BadSlot);
    assert_eq!(r.op(FlashOp::Program, 1, 0x3F_FFF0, 0x20).0, FlashResult::BadRange);
    assert_eq!(r.op(FlashOp::Read, 1, u32::MAX, 2).0, FlashResult::BadRange);
    r.dev.write32(F + flash::CMD, 0x77);
    assert_eq!(flash::STATUS::RESULT.get(u64::from(r.reg(flash::STATUS))), FlashResult::BadOp as u64);
    assert_eq!(r.op(FlashOp::Program, 1, 0, 16).0, FlashResult::Ok);
    assert_eq!(r.op(FlashOp::Program, 1, 0, 16).0, FlashResult::NotErased);
    assert_eq!(
        r.op(FlashOp::Verify, 1, 0, 0),
        (FlashResult::BadImage, u32::from(u8::from(ImageCheck::Header)))
    );
    assert_eq!(r.op(FlashOp::Activate, 1, 0, 0).0, FlashResult::BadImage);
    assert_eq!(r.reg(flash::ACTIVE), 0, "a refused activation changes nothing");
    r.dev.write64(F + flash::DMA_ADDR, 0xdead_0000);
    r.dev.write32(F + flash::CMD, u32::from(u8::from(FlashOp::Read)));
    assert_eq!(flash::STATUS::RESULT.get(u64::from(r.reg(flash::STATUS))), FlashResult::DmaError as u64);
}

#[test]
fn a_power_cut_midway_through_programming_leaves_the_old_slot_active_and_bootable() {
    let mut r = rig();
    let big = ModelConfig { build_id: 9, ..cfg(9, 1024) };
    let mut image = factory_image(&big);
    // Pad the payload with TOML comments so the write takes several chunks.
    image.truncate(256);
    let mut payload = big.to_toml();
    payload.push_str(&"# padding\n".repeat(20_000));
    let h = rtl_spec::image::unsigned_header(&big, rtl_spec::SPEC_VERSION, 0, payload.as_bytes());
    let image = [zerocopy::IntoBytes::as_bytes(&h), payload.as_bytes()].concat();
    assert!(image.len() > 3 * BUF_LEN);
    let before = r.dev.flash().to_bytes();
    // Erase counts the whole slot; the cut comes 100 KiB into the image.
    r.dev.flash_mut().cut_power_after(u64::from(rtl_spec::formats::FLASH_SLOT_SIZE) + 100_000, None);
    let _ = r.write_slot(1, &image);
    assert!(r.dev.flash().power_lost());
    let after = r.dev.flash().to_bytes();
    let slot = rtl_spec::formats::FLASH_SLOT_SIZE as usize;
    assert_eq!(after[..slot], before[..slot], "slot 0 untouched");
    assert_eq!(after[2 * slot..], before[2 * slot..], "state area untouched");
    let mut r = r.power_cycle();
    assert_eq!((r.reg(flash::ACTIVE), r.reg(flash::BOOTED), r.build_id()), (0, 0, 1));
    let st = r.status();
    assert_eq!(flash::BOOT_STATUS::FELL_BACK.get(st), 0);
    assert_eq!((flash::BOOT_STATUS::SLOT0_OK.get(st), flash::BOOT_STATUS::SLOT1_OK.get(st)), (1, 0));
    // The write can simply be done again.
    r.write_slot(1, &image).unwrap();
    assert_eq!(r.op(FlashOp::Activate, 1, 0, 0).0, FlashResult::Ok);
    r.reset();
    assert_eq!(r.build_id(), 9);
}

#[test]
fn rewriting_an_activated_slot_first_makes_the_booted_slot_active_again() {
    let mut r = rig();
    r.write_slot(1, &factory_image(&cfg(2, 1024))).unwrap();
    assert_eq!(r.op(FlashOp::Activate, 1, 0, 0).0, FlashResult::Ok);
    r.dev.flash_mut().cut_power_after(u64::from(rtl_spec::formats::FLASH_SLOT_SIZE) + 64 + 32, None);
    let _ = r.write_slot(1, &factory_image(&cfg(3, 1024)));
    let mut r = r.power_cycle();
    assert_eq!((r.reg(flash::ACTIVE), r.reg(flash::BOOTED), r.build_id()), (0, 0, 1));
    assert_eq!(flash::BOOT_STATUS::FELL_BACK.get(r.status()), 0, "no fallback: the activation was withdrawn");
}

#[test]
fn an_unconfirmed_trial_falls_back_when_the_watchdog_expires() {
    let mut r = rig();
    r.write_slot(1, &factory_image(&cfg(2, 1024))).unwrap();
    r.op(FlashOp::Activate, 1, 0, 0);
    r.reset();
    assert_eq!(r.build_id(), 2);
    r.dev.write32(F + flash::CONFIRM_TIMEOUT_MS, 50);
    let resets = r.dev.read32(control::BASE + control::RESET_COUNT);
    r.clock.advance(49_000_000);
    r.dev.tick();
    assert_eq!(r.build_id(), 2, "not yet");
    r.clock.advance(2_000_000);
    r.dev.tick();
    assert_eq!((r.reg(flash::ACTIVE), r.reg(flash::BOOTED), r.build_id()), (0, 0, 1));
    assert_eq!(r.dev.read32(control::BASE + control::RESET_COUNT), resets + 1, "the NIC rebooted");
    let st = r.status();
    assert_eq!((flash::BOOT_STATUS::FELL_BACK.get(st), flash::BOOT_STATUS::UNCONFIRMED.get(st)), (1, 1));
    let ev = r.events();
    assert_eq!((ev[0].cause, ev[0].data.get()), (FlashEvent::FellBack as u8, 0));
    // The fallback is persistent.
    let mut r = r.power_cycle();
    assert_eq!((r.reg(flash::ACTIVE), r.build_id()), (0, 1));
}

#[test]
fn an_image_never_confirmed_falls_back_after_the_boot_limit() {
    let mut r = rig();
    r.write_slot(1, &factory_image(&cfg(2, 1024))).unwrap();
    r.op(FlashOp::Activate, 1, 0, 0);
    for boot in 1..=rtl_spec::formats::FLASH_BOOT_LIMIT {
        r = r.power_cycle();
        assert_eq!((r.build_id(), r.reg(flash::BOOT_TRIES)), (2, boot), "trial boot {boot}");
    }
    let mut r = r.power_cycle();
    assert_eq!((r.reg(flash::ACTIVE), r.build_id()), (0, 1));
    let st = r.status();
    assert_eq!((flash::BOOT_STATUS::FELL_BACK.get(st), flash::BOOT_STATUS::UNCONFIRMED.get(st)), (1, 1));
}

#[test]
fn a_corrupt_active_slot_falls_back_and_says_which_check_failed() {
    let mut r = rig();
    r.write_slot(1, &factory_image(&cfg(2, 1024))).unwrap();
    r.op(FlashOp::Activate, 1, 0, 0);
    r.reset();
    r.dev.write32(F + flash::CONFIRM, FLASH_CONFIRM_KEY);
    // Flip one payload byte of slot 1 behind the controller's back.
    let mut bytes = r.dev.flash().to_bytes();
    let slot = rtl_spec::formats::FLASH_SLOT_SIZE as usize;
    bytes[slot + 256 + 10] ^= 0x20;
    let mut r = rig_with(Flash::from_bytes(&bytes));
    assert_eq!((r.reg(flash::ACTIVE), r.reg(flash::BOOTED), r.build_id()), (0, 0, 1));
    let st = r.status();
    assert_eq!(flash::BOOT_STATUS::FELL_BACK.get(st), 1);
    assert_eq!(flash::BOOT_STATUS::UNCONFIRMED.get(st), 0);
    assert_eq!(flash::BOOT_STATUS::FAILED_CHECK.get(st), u64::from(u8::from(ImageCheck::Crc32)));
    let ev = r.events();
    assert_eq!((ev[0].kind, ev[0].cause), (EventKind::Flash as u8, FlashEvent::FellBack as u8));
}

#[test]
fn a_blank_flash_boots_the_factory_image_and_can_be_written() {
    let mut r = rig_with(Flash::blank());
    assert_eq!(r.build_id(), 0xFAC7_0001);
    assert_eq!(r.reg(flash::BOOTED), u32::MAX);
    let st = r.status();
    assert_eq!((flash::BOOT_STATUS::FACTORY.get(st), flash::BOOT_STATUS::FELL_BACK.get(st)), (1, 0));
    assert!(r.events().is_empty(), "a blank flash is no fallback");
    r.write_slot(0, &factory_image(&cfg(5, 1024))).unwrap();
    r.op(FlashOp::Activate, 0, 0, 0);
    r.reset();
    assert_eq!((r.reg(flash::BOOTED), r.build_id()), (0, 5));
}
