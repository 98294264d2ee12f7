//! The driver side of the flash controller: reading the boot status, writing an image into a
//! slot (erase, program by DMA, read back, verify), activating a slot, and confirming a boot,
//! following SPEC.md's "Firmware images and the flash". Whether an image may be written at all
//! (signature, spec version, geometry) is the caller's decision: this module moves bytes and
//! reports what the NIC says.
//!
//! It needs only the identity magic and the `FLASH` block, not a compatible spec version: a
//! device running an image this driver cannot drive can still be given a new one.

use crate::dma::DmaRegion;
use crate::error::DriverError;
use crate::nic::walk_chain;
use crate::transport::Transport;
use rtl_spec::codes::{BlockType, FlashOp, FlashResult, ImageCheck};
use rtl_spec::regs::{FLASH_CONFIRM_KEY, flash, header, identity};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Bytes moved by one program or read operation (the DMA buffer's size).
pub const CHUNK: usize = 64 * 1024;
/// How long one flash operation may take before the device counts as hung.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the flash controller reports (the booleans are `BOOT_STATUS` bits).
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FlashStatus {
    /// Image slots.
    pub slot_count: u32,
    /// Bytes per slot.
    pub slot_size: u32,
    /// The slot booted at the next reset.
    pub active: u32,
    /// The slot the running image came from; `None` when the factory image runs.
    pub booted: Option<u32>,
    /// The boot fell back from the active slot.
    pub fell_back: bool,
    /// The fallback was for want of a confirmation.
    pub unconfirmed: bool,
    /// With `fell_back` for a failed check: which.
    pub failed_check: Option<String>,
    /// The driver confirmed this boot.
    pub confirmed: bool,
    /// This boot is a trial (activated, not confirmed yet).
    pub trial: bool,
    /// The factory image runs.
    pub factory: bool,
    /// Which slots pass the NIC's boot checks.
    pub slot_ok: Vec<bool>,
    /// Trial boots so far, and the limit.
    pub boot_tries: u32,
    /// Trial boots allowed.
    pub boot_limit: u32,
    /// The watchdog's timeout.
    pub confirm_timeout_ms: u32,
    /// Build id of the running image.
    pub image_build_id: u32,
}

impl FlashStatus {
    /// The slot a new image goes to: the one the running image did not come from.
    pub fn inactive(&self) -> u32 {
        match self.booted {
            Some(b) => 1 - b.min(1),
            None => 1 - self.active.min(1),
        }
    }
}

/// A flash operation the NIC refused.
#[derive(Debug)]
pub enum FlashError {
    /// The transport or the device failed.
    Driver(DriverError),
    /// The NIC completed the operation with an error.
    Refused {
        /// The operation.
        op: FlashOp,
        /// The slot.
        slot: u32,
        /// The result code.
        result: Option<FlashResult>,
        /// For `BadImage`, the check that failed.
        check: Option<ImageCheck>,
    },
    /// The NIC did not finish an operation in time.
    Timeout(FlashOp),
}

impl std::fmt::Display for FlashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlashError::Driver(e) => write!(f, "{e}"),
            FlashError::Refused { op, slot, result, check } => {
                let result = result.map_or("an unknown result", FlashResult::name);
                write!(f, "flash {} on slot {slot} failed: {result}", op.name())?;
                if let Some(c) = check {
                    write!(f, " (the image fails its {} check)", c.name())?;
                }
                Ok(())
            }
            FlashError::Timeout(op) => write!(f, "flash {} did not finish in {OP_TIMEOUT:?}", op.name()),
        }
    }
}

impl std::error::Error for FlashError {}

impl From<DriverError> for FlashError {
    fn from(e: DriverError) -> Self {
        FlashError::Driver(e)
    }
}

/// The flash controller of one device, with a DMA buffer for its transfers.
pub struct FlashController<'a> {
    t: &'a mut dyn Transport,
    base: u32,
    buf: DmaRegion,
}

impl<'a> FlashController<'a> {
    /// Finds the `FLASH` block (checking the identity magic, not the spec version).
    pub fn open(t: &'a mut dyn Transport) -> Result<Self, DriverError> {
        let type_word = t.read32(identity::BASE + header::TYPE);
        let magic = t.read32(identity::BASE + identity::MAGIC);
        if type_word != BlockType::Identity as u32 || magic != rtl_spec::MAGIC {
            return Err(DriverError::NotASluiceDevice { type_word, magic });
        }
        let (blocks, _) = walk_chain(t)?;
        let base = blocks.base(BlockType::Flash)?;
        let buf = t.alloc_dma(CHUNK)?;
        Ok(FlashController { t, base, buf })
    }

    fn reg(&mut self, r: u32) -> u32 {
        self.t.read32(self.base + r)
    }

    /// Reads the boot status.
    pub fn status(&mut self) -> FlashStatus {
        use flash::BOOT_STATUS as B;
        let st = u64::from(self.reg(flash::BOOT_STATUS));
        let on = |b: rtl_spec::Bits| b.get(st) != 0;
        let booted = self.reg(flash::BOOTED);
        let check = u8::try_from(B::FAILED_CHECK.get(st)).ok().and_then(|c| ImageCheck::try_from(c).ok());
        FlashStatus {
            slot_count: self.reg(flash::SLOT_COUNT),
            slot_size: self.reg(flash::SLOT_SIZE),
            active: self.reg(flash::ACTIVE),
            booted: (booted != u32::MAX).then_some(booted),
            fell_back: on(B::FELL_BACK),
            unconfirmed: on(B::UNCONFIRMED),
            failed_check: check.filter(|_| on(B::FELL_BACK)).map(|c| c.name().to_string()),
            confirmed: on(B::CONFIRMED),
            trial: on(B::TRIAL),
            factory: on(B::FACTORY),
            slot_ok: vec![on(B::SLOT0_OK), on(B::SLOT1_OK)],
            boot_tries: self.reg(flash::BOOT_TRIES),
            boot_limit: self.reg(flash::BOOT_LIMIT),
            confirm_timeout_ms: self.reg(flash::CONFIRM_TIMEOUT_MS),
            image_build_id: self.reg(flash::IMAGE_BUILD_ID),
        }
    }

    /// Runs one operation and waits for it; `Err` unless it completed `Ok`.
    pub fn op(&mut self, op: FlashOp, slot: u32, offset: u32, len: u32) -> Result<(), FlashError> {
        let b = self.base;
        self.t.write32(b + flash::SLOT, slot);
        self.t.write32(b + flash::OFFSET, offset);
        self.t.write32(b + flash::LENGTH, len);
        self.t.write64(b + flash::DMA_ADDR, self.buf.iova());
        self.t.write32(b + flash::CMD, u32::from(u8::from(op)));
        let deadline = Instant::now() + OP_TIMEOUT;
        let st = loop {
            let st = u64::from(self.t.read32(b + flash::STATUS));
            if flash::STATUS::BUSY.get(st) == 0 && flash::STATUS::DONE.get(st) != 0 {
                break st;
            }
            if Instant::now() > deadline {
                return Err(FlashError::Timeout(op));
            }
            self.t.service();
            std::thread::sleep(Duration::from_micros(50));
        };
        let result = FlashResult::try_from(flash::STATUS::RESULT.get(st) as u8).ok();
        if result == Some(FlashResult::Ok) {
            return Ok(());
        }
        let check =
            u8::try_from(flash::STATUS::DETAIL.get(st)).ok().and_then(|c| ImageCheck::try_from(c).ok());
        Err(FlashError::Refused { op, slot, result, check })
    }

    /// Erases `slot` and programs `image` into it, calling `progress` with the bytes written.
    pub fn write_slot(
        &mut self,
        slot: u32,
        image: &[u8],
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FlashError> {
        self.op(FlashOp::Erase, slot, 0, 0)?;
        for (i, chunk) in image.chunks(CHUNK).enumerate() {
            self.buf.write(0, chunk);
            self.op(FlashOp::Program, slot, (i * CHUNK) as u32, chunk.len() as u32)?;
            progress((i * CHUNK + chunk.len()) as u64);
        }
        Ok(())
    }

    /// Reads `len` bytes of `slot` from offset 0, calling `progress` with the bytes read.
    pub fn read_slot(
        &mut self,
        slot: u32,
        len: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<u8>, FlashError> {
        let mut out = vec![0u8; len];
        for (i, chunk) in out.chunks_mut(CHUNK).enumerate() {
            self.op(FlashOp::Read, slot, (i * CHUNK) as u32, chunk.len() as u32)?;
            self.buf.read(0, chunk);
            progress((i * CHUNK + chunk.len()) as u64);
        }
        Ok(out)
    }

    /// The image in `slot` as far as its header says (header alone if it says nothing sane).
    pub fn read_image(&mut self, slot: u32) -> Result<Vec<u8>, FlashError> {
        let head = self.read_slot(slot, rtl_spec::formats::IMAGE_HEADER_SIZE, &mut |_| {})?;
        let payload = u32::from_le_bytes([head[0x40], head[0x41], head[0x42], head[0x43]]);
        let slot_size = self.reg(flash::SLOT_SIZE) as usize;
        let len = (head.len() + payload as usize).min(slot_size);
        if head[..8] != rtl_spec::formats::IMAGE_MAGIC || len <= head.len() {
            return Ok(head);
        }
        self.read_slot(slot, len, &mut |_| {})
    }

    /// Asks the NIC to check `slot`.
    pub fn verify(&mut self, slot: u32) -> Result<(), FlashError> {
        self.op(FlashOp::Verify, slot, 0, 0)
    }

    /// Makes `slot` the one booted at the next reset.
    pub fn activate(&mut self, slot: u32) -> Result<(), FlashError> {
        self.op(FlashOp::Activate, slot, 0, 0)
    }

    /// Confirms the running boot.
    pub fn confirm(&mut self) {
        let b = self.base;
        self.t.write32(b + flash::CONFIRM, FLASH_CONFIRM_KEY);
    }

    /// Sets the watchdog's timeout for the running trial.
    pub fn set_confirm_timeout_ms(&mut self, ms: u32) {
        let b = self.base;
        self.t.write32(b + flash::CONFIRM_TIMEOUT_MS, ms);
    }
}

impl Drop for FlashController<'_> {
    fn drop(&mut self) {
        let _ = self.t.free_dma(&self.buf);
    }
}
