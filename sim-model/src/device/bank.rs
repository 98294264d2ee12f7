//! The counter bank (spec 1.2): one [`CounterSet`] per set number, which records name in their
//! control word's `counter_set`. A hit adds to the record's own counters and to its set's in the
//! same pass ([`super::datapath`]); the host allocates and frees sets with `CounterSetAlloc` and
//! `CounterSetFree` and reads the whole bank with one DMA write per `CounterBankRead`.
//!
//! The bank keeps, per set, the number of live records naming it (what a hardware bank keeps
//! beside the counters): every change of a record's liveness or set goes through
//! [`CounterBank::retain`] and [`CounterBank::release`], so a set is never freed under a flow.

use super::Device;
use rtl_spec::codes::{ErrorCode, Status};
use rtl_spec::formats::{COUNTER_SETS, CounterSet, FlowCommand, FlowRecord};
use rtl_spec::regs::control;
use zerocopy::{FromZeros, IntoBytes};

/// The bank: counters, allocation and reference counts, by set number.
pub(crate) struct CounterBank {
    pub sets: Vec<CounterSet>,
    pub allocated: Vec<bool>,
    /// Live records naming each set.
    pub refs: Vec<u32>,
    /// `BANK_READS`.
    pub reads: u64,
}

impl CounterBank {
    /// An empty bank (no set allocated), as after a reset.
    pub fn new() -> Self {
        let n = COUNTER_SETS as usize;
        CounterBank {
            sets: CounterSet::new_vec_zeroed(n).unwrap_or_default(),
            allocated: vec![false; n],
            refs: vec![0; n],
            reads: 0,
        }
    }

    /// Allocated sets (`COUNTER_SETS_USED`).
    pub fn used(&self) -> u32 {
        self.allocated.iter().filter(|a| **a).count() as u32
    }

    /// Whether a record may name `set`: none (0), or an allocated set.
    pub fn nameable(&self, set: u16) -> bool {
        set == 0 || self.allocated.get(usize::from(set)).copied().unwrap_or(false)
    }

    /// A live record now names `set`.
    pub fn retain(&mut self, set: u16) {
        if set != 0
            && let Some(r) = self.refs.get_mut(usize::from(set))
        {
            *r += 1;
        }
    }

    /// A live record no longer names `set` (deleted, evicted, flushed, or moved to another set).
    pub fn release(&mut self, set: u16) {
        if set != 0
            && let Some(r) = self.refs.get_mut(usize::from(set))
        {
            *r = r.saturating_sub(1);
        }
    }

    /// Every record is gone (Flush): no set is named any more; sets stay allocated.
    pub fn release_all(&mut self) {
        self.refs.fill(0);
    }

    /// A hit of `bytes` in direction `reply` on a record naming `set`.
    #[inline]
    pub fn count(&mut self, set: u16, reply: bool, bytes: u64) {
        if set != 0
            && let Some(s) = self.sets.get_mut(usize::from(set))
        {
            s.add(reply, bytes);
        }
    }

    /// The set number a set command names, checked against the bank.
    fn set_arg(&self, cmd: &FlowCommand) -> Result<usize, Status> {
        let n = cmd.arg.get() as usize;
        if n == 0 || n >= self.sets.len() { Err(Status::CounterSetOutOfRange) } else { Ok(n) }
    }
}

/// The set a record names (0 for none).
pub(crate) fn set_of(rec: &FlowRecord) -> u16 {
    rec.ctl.counter_set()
}

impl Device {
    /// `CounterSetAlloc`: the set is zeroed and may be named.
    pub(super) fn cmd_set_alloc(&mut self, cmd: &FlowCommand) -> Result<(), Status> {
        let n = self.bank.set_arg(cmd)?;
        if self.bank.allocated[n] {
            return Err(Status::CounterSetLive);
        }
        self.bank.allocated[n] = true;
        self.bank.sets[n] = CounterSet::default();
        Ok(())
    }

    /// `CounterSetFree`: refused while a live record names the set.
    pub(super) fn cmd_set_free(&mut self, cmd: &FlowCommand) -> Result<(), Status> {
        let n = self.bank.set_arg(cmd)?;
        if !self.bank.allocated[n] {
            return Err(Status::CounterSetNotLive);
        }
        if self.bank.refs[n] > 0 {
            return Err(Status::CounterSetInUse);
        }
        self.bank.allocated[n] = false;
        self.bank.sets[n] = CounterSet::default();
        Ok(())
    }

    /// `CounterBankRead`: the first `arg` sets (0: all) to host memory, in one DMA write; free
    /// sets read as zeros (a freed set is zeroed).
    pub(super) fn cmd_bank_read(&mut self, cmd: &FlowCommand) -> Result<(), Status> {
        let count = match cmd.arg.get() as usize {
            0 => self.bank.sets.len(),
            n if n <= self.bank.sets.len() => n,
            _ => return Err(Status::CounterSetOutOfRange),
        };
        if self.mem.write(cmd.dma_addr.get(), self.bank.sets[..count].as_bytes()).is_err() {
            self.dma_error(control::ERROR::DMA_WRITE.mask() as u32, ErrorCode::DmaWrite);
            return Err(Status::DmaError);
        }
        self.bank.reads += 1;
        Ok(())
    }

    /// The counter bank as a hardware debug port would dump it: the sets and, per set, whether it
    /// is allocated and how many live records name it. No driver reads it this way (the host
    /// reads the bank with `CounterBankRead`); tests compare it with the records.
    pub fn counter_bank(&self) -> (&[CounterSet], &[bool], &[u32]) {
        (&self.bank.sets, &self.bank.allocated, &self.bank.refs)
    }
}
