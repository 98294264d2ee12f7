//! The flash medium: two slots and the two-sector state area, in memory and optionally written
//! through to a file so the flash survives a restart of the model.
//!
//! The file is the raw flash, `2 × FLASH_SLOT_SIZE + 2 × FLASH_STATE_SECTOR` bytes: slot 0,
//! slot 1, state sector A, state sector B. Every write goes to exactly the bytes it changes
//! (`pwrite`), so programming a slot never touches the other slot or the state; a state write
//! goes to the sector holding the older record and is followed by `fdatasync`, so a power cut
//! leaves either the old record or the new one valid, never neither.
//!
//! Power loss is simulated with [`Flash::cut_power_after`]: after that many more bytes written
//! (erase, program and state writes all count) the write in progress stops short and every
//! later write is lost, as when the board loses power; an optional hook runs at that moment
//! (`sluice sim` aborts the process there).

use rtl_spec::formats::{FLASH_SLOT_SIZE, FLASH_STATE_MAGIC, FLASH_STATE_SECTOR, FlashStateRecord};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, IntoBytes};

/// Slots in the flash.
pub const SLOTS: usize = 2;
const SLOT: usize = FLASH_SLOT_SIZE as usize;
const SECTOR: usize = FLASH_STATE_SECTOR as usize;
/// Bytes of a flash file.
pub const FLASH_FILE_SIZE: u64 = (SLOTS * SLOT + 2 * SECTOR) as u64;

/// What the state area says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlashState {
    /// The slot booted at the next reset.
    pub active: u8,
    /// The active slot is on trial (activated, not confirmed).
    pub pending: bool,
    /// Trial boots so far.
    pub boots: u8,
}

/// Called once when simulated power is cut.
pub type PowerCutHook = Box<dyn FnMut() + Send>;

/// The flash: slot contents, the state area, and where they persist.
pub struct Flash {
    /// Slot bytes; a slot shorter than `FLASH_SLOT_SIZE` reads 0xFF beyond its end (erased).
    slots: [Vec<u8>; SLOTS],
    /// The two state sectors' first `FlashStateRecord` bytes.
    sectors: [[u8; 32]; 2],
    file: Option<File>,
    cut_after: Option<u64>,
    dead: bool,
    on_cut: Option<PowerCutHook>,
}

impl std::fmt::Debug for Flash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flash")
            .field("file", &self.file.is_some())
            .field("state", &self.state())
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

impl Flash {
    /// An erased flash in memory: both slots blank, no state record.
    pub fn blank() -> Self {
        Flash {
            slots: [Vec::new(), Vec::new()],
            sectors: [[0xFF; 32]; 2],
            file: None,
            cut_after: None,
            dead: false,
            on_cut: None,
        }
    }

    /// A flash in memory whose slot 0 holds `image` (a card as it leaves the factory).
    pub fn with_image(image: &[u8]) -> Self {
        let mut f = Self::blank();
        let n = image.len().min(SLOT);
        f.slots[0] = image[..n].to_vec();
        f
    }

    /// Opens the flash file at `path`; creates it when it does not exist, with `initial` in
    /// slot 0 and everything else erased. A file of another size is refused.
    pub fn open(path: &Path, initial: &[u8]) -> std::io::Result<Self> {
        let shown = path.display();
        let exists = path.exists();
        let file = File::options().read(true).write(true).create(true).truncate(false).open(path)?;
        let len = file.metadata()?.len();
        if !exists || len == 0 {
            let mut f = Self::with_image(initial);
            let mut bytes = vec![0xFF; FLASH_FILE_SIZE as usize];
            bytes[..f.slots[0].len()].copy_from_slice(&f.slots[0]);
            file.write_all_at(&bytes, 0)?;
            file.sync_all()?;
            f.file = Some(file);
            return Ok(f);
        }
        if len != FLASH_FILE_SIZE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{shown} is {len} bytes, not a flash file ({FLASH_FILE_SIZE} bytes: two slots and the state area)"
                ),
            ));
        }
        let mut f = Self::blank();
        for (n, slot) in f.slots.iter_mut().enumerate() {
            let mut bytes = vec![0u8; SLOT];
            file.read_exact_at(&mut bytes, (n * SLOT) as u64)?;
            // Keep only up to the last programmed byte: the rest reads erased anyway.
            let used = bytes.iter().rposition(|b| *b != 0xFF).map_or(0, |p| p + 1);
            bytes.truncate(used);
            *slot = bytes;
        }
        for (n, sector) in f.sectors.iter_mut().enumerate() {
            file.read_exact_at(sector, (SLOTS * SLOT + n * SECTOR) as u64)?;
        }
        f.file = Some(file);
        Ok(f)
    }

    /// The whole flash as the file holds it (slots, then the state sectors).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0xFF; FLASH_FILE_SIZE as usize];
        for (n, slot) in self.slots.iter().enumerate() {
            out[n * SLOT..n * SLOT + slot.len()].copy_from_slice(slot);
        }
        for (n, sector) in self.sectors.iter().enumerate() {
            let at = SLOTS * SLOT + n * SECTOR;
            out[at..at + 32].copy_from_slice(sector);
        }
        out
    }

    /// A flash in memory with the content [`Self::to_bytes`] returned (after a simulated power
    /// cut: the flash as the next power-on finds it).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut f = Self::blank();
        for (n, slot) in f.slots.iter_mut().enumerate() {
            let part = bytes.get(n * SLOT..(n + 1) * SLOT).unwrap_or(&[]);
            let used = part.iter().rposition(|b| *b != 0xFF).map_or(0, |p| p + 1);
            *slot = part[..used].to_vec();
        }
        for (n, sector) in f.sectors.iter_mut().enumerate() {
            let at = SLOTS * SLOT + n * SECTOR;
            if let Some(b) = bytes.get(at..at + 32) {
                sector.copy_from_slice(b);
            }
        }
        f
    }

    /// Simulates a power cut after `bytes` more bytes are written; `hook` runs at the cut.
    pub fn cut_power_after(&mut self, bytes: u64, hook: Option<PowerCutHook>) {
        self.cut_after = Some(bytes);
        self.on_cut = hook;
    }

    /// Power was cut: nothing written since reached the flash.
    pub fn power_lost(&self) -> bool {
        self.dead
    }

    /// Copies `buf.len()` bytes of slot `slot` at `offset` into `buf`.
    pub fn read(&self, slot: usize, offset: usize, buf: &mut [u8]) {
        // A copy and a fill, not a byte at a time: every boot check of an erased slot reads
        // the whole slot (its header's length is all ones).
        let data = self.slots[slot].get(offset..).unwrap_or_default();
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        buf[n..].fill(0xFF);
    }

    /// The first `len` bytes of slot `slot` (at most the slot).
    pub fn slot_prefix(&self, slot: usize, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len.min(SLOT)];
        self.read(slot, 0, &mut out);
        out
    }

    /// Whether `len` bytes of slot `slot` at `offset` are all erased.
    pub fn is_erased(&self, slot: usize, offset: usize, len: usize) -> bool {
        let data = &self.slots[slot];
        offset >= data.len() || data[offset..data.len().min(offset + len)].iter().all(|b| *b == 0xFF)
    }

    /// How many of `want` bytes may still be written before the power cut; marks the cut.
    fn allowance(&mut self, want: usize) -> usize {
        if self.dead {
            return 0;
        }
        let Some(left) = self.cut_after else { return want };
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(want);
        self.cut_after = Some(left - n as u64);
        if n < want {
            self.dead = true;
        }
        n
    }

    fn after_write(&mut self) {
        if self.dead {
            if let Some(mut hook) = self.on_cut.take() {
                hook();
            }
        }
    }

    /// Writes `data` into slot `slot` at `offset` (program: the caller checked it is erased).
    pub fn program(&mut self, slot: usize, offset: usize, data: &[u8]) -> std::io::Result<()> {
        let n = self.allowance(data.len());
        let data = &data[..n];
        let s = &mut self.slots[slot];
        if s.len() < offset + data.len() {
            s.resize(offset + data.len(), 0xFF);
        }
        s[offset..offset + data.len()].copy_from_slice(data);
        let result = match &self.file {
            Some(f) => f.write_all_at(data, (slot * SLOT + offset) as u64),
            None => Ok(()),
        };
        self.after_write();
        result
    }

    /// Erases slot `slot` (every byte 0xFF).
    pub fn erase(&mut self, slot: usize) -> std::io::Result<()> {
        let used = self.slots[slot].len();
        let n = self.allowance(SLOT);
        // Erase proceeds from the start of the slot; a cut leaves the tail as it was.
        let s = &mut self.slots[slot];
        if n >= used {
            s.clear();
        } else {
            s[..n].fill(0xFF);
        }
        let result = match &self.file {
            Some(f) => {
                let ff = vec![0xFF; n];
                f.write_all_at(&ff, (slot * SLOT) as u64).and_then(|()| f.sync_data())
            }
            None => Ok(()),
        };
        self.after_write();
        result
    }

    /// Makes the slots' bytes durable (before a state write that depends on them).
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.as_ref().map_or(Ok(()), File::sync_data)
    }

    /// The valid state record with the highest sequence: (its sector, its sequence, the state).
    fn newest(&self) -> Option<(usize, u32, FlashState)> {
        let decode = |b: &[u8; 32]| {
            let r = FlashStateRecord::read_from_bytes(b).ok()?;
            let crc = crc32fast::hash(&b[..FlashStateRecord::CRC_SPAN]);
            let ok =
                r.magic.get() == FLASH_STATE_MAGIC && r.crc32.get() == crc && usize::from(r.active) < SLOTS;
            ok.then_some((
                r.sequence.get(),
                FlashState { active: r.active, pending: r.pending != 0, boots: r.boots },
            ))
        };
        let a = decode(&self.sectors[0]).map(|(s, st)| (0, s, st));
        let b = decode(&self.sectors[1]).map(|(s, st)| (1, s, st));
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.1 > a.1 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The state area's content; slot 0 active and nothing pending when no record is valid.
    pub fn state(&self) -> FlashState {
        self.newest().map(|(_, _, s)| s).unwrap_or_default()
    }

    /// Writes `state` as a new record over the older (or invalid) sector, then syncs.
    pub fn write_state(&mut self, state: FlashState) -> std::io::Result<()> {
        let (sector, seq) = match self.newest() {
            Some((s, seq, _)) => (1 - s, seq.wrapping_add(1)),
            None => (0, 1),
        };
        let mut r = FlashStateRecord {
            magic: U32::new(FLASH_STATE_MAGIC),
            sequence: U32::new(seq),
            active: state.active,
            pending: u8::from(state.pending),
            boots: state.boots,
            ..FlashStateRecord::default()
        };
        r.crc32 = U32::new(crc32fast::hash(&r.as_bytes()[..FlashStateRecord::CRC_SPAN]));
        let bytes = r.as_bytes();
        let n = self.allowance(bytes.len());
        self.sectors[sector][..n].copy_from_slice(&bytes[..n]);
        let result = match &self.file {
            Some(f) => f
                .write_all_at(&bytes[..n], (SLOTS * SLOT + sector * SECTOR) as u64)
                .and_then(|()| f.sync_data()),
            None => Ok(()),
        };
        self.after_write();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_alternates_sectors_and_survives_a_torn_write() {
        let mut f = Flash::blank();
        assert_eq!(f.state(), FlashState::default());
        f.write_state(FlashState { active: 1, pending: true, boots: 0 }).unwrap();
        f.write_state(FlashState { active: 1, pending: true, boots: 1 }).unwrap();
        assert_eq!(f.state(), FlashState { active: 1, pending: true, boots: 1 });
        // Cut the power 10 bytes into the next record: the previous one stands.
        f.cut_power_after(10, None);
        f.write_state(FlashState { active: 0, pending: false, boots: 0 }).unwrap();
        assert!(f.power_lost());
        let after = Flash::from_bytes(&f.to_bytes());
        assert_eq!(after.state(), FlashState { active: 1, pending: true, boots: 1 });
    }

    #[test]
    fn a_read_past_the_programmed_bytes_reads_erased() {
        let mut f = Flash::blank();
        f.program(1, 4, &[1, 2, 3]).unwrap();
        let mut buf = [0u8; 9];
        f.read(1, 2, &mut buf);
        assert_eq!(buf, [0xFF, 0xFF, 1, 2, 3, 0xFF, 0xFF, 0xFF, 0xFF]);
        f.read(1, 100, &mut buf);
        assert_eq!(buf, [0xFF; 9]);
        assert_eq!(f.slot_prefix(0, 3), [0xFF; 3]);
    }

    #[test]
    fn program_stops_at_the_cut_and_later_writes_are_lost() {
        let mut f = Flash::blank();
        f.cut_power_after(5, None);
        f.program(1, 0, &[1; 8]).unwrap();
        f.program(1, 8, &[2; 8]).unwrap();
        let mut b = [0u8; 16];
        f.read(1, 0, &mut b);
        assert_eq!(b[..5], [1; 5]);
        assert!(b[5..].iter().all(|x| *x == 0xFF));
        assert!(f.is_erased(0, 0, SLOT));
    }

    #[test]
    fn a_file_round_trips_and_a_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let mut f = Flash::open(&path, b"factory").unwrap();
        f.program(1, 100, b"hello").unwrap();
        f.write_state(FlashState { active: 1, pending: true, boots: 2 }).unwrap();
        drop(f);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), FLASH_FILE_SIZE);
        let f = Flash::open(&path, b"ignored").unwrap();
        assert_eq!(f.slot_prefix(0, 7), b"factory");
        let mut b = [0u8; 5];
        f.read(1, 100, &mut b);
        assert_eq!(&b, b"hello");
        assert_eq!(f.state(), FlashState { active: 1, pending: true, boots: 2 });
        assert_eq!(f.to_bytes(), std::fs::read(&path).unwrap());
        let bad = dir.path().join("short.bin");
        std::fs::write(&bad, b"xx").unwrap();
        let e = Flash::open(&bad, b"").unwrap_err().to_string();
        assert!(e.contains("not a flash file"), "{e}");
    }
}
