//! The counter bank from the host's side: which sets are allocated and how many installed flows
//! name each (a shadow of the NIC's own reference counts, so a free that the NIC would refuse is
//! refused here first), the commands that allocate, free and move sets, and the bulk read.
//!
//! Sets are allocated like next-hop entries: the host picks the number (the lowest free one)
//! and tells the NIC with a command queued with the others, so an install naming a set reaches
//! the NIC after the set's allocation. A device reset empties the bank; the recovery
//! ([`FlowTable::reconcile`]) allocates every set again before it rewrites the records (their
//! counts start again from zero: readers accumulate deltas).

use crate::records::MAX_COUNTER_SET;
use crate::table::{FlowTable, Handle, InstallError, Undo};
use host_driver::nic::CounterBankBuffer;
use host_driver::{DriverError, Nic};
use rtl_spec::formats::{CounterSet, FlowCommand, ModifyMask};
use zerocopy::IntoBytes;
use zerocopy::little_endian::U32;

/// The host's view of the NIC's counter bank.
#[derive(Debug)]
pub(crate) struct BankShadow {
    /// By set number: allocated.
    allocated: Vec<bool>,
    /// By set number: installed flows naming it.
    refs: Vec<u32>,
    /// The buffer the bank is read into, allocated at the first read.
    buf: Option<CounterBankBuffer>,
    /// The last read, by set number.
    last: Vec<CounterSet>,
}

impl BankShadow {
    /// A bank of `sets` sets (0: the device has none), none allocated. Only the sets a record
    /// can name (11 bits, [`MAX_COUNTER_SET`]) are used, whatever the device has.
    pub(crate) fn new(sets: u32) -> Self {
        let sets = sets.min(u32::from(MAX_COUNTER_SET) + 1) as usize;
        BankShadow { allocated: vec![false; sets], refs: vec![0; sets], buf: None, last: Vec::new() }
    }

    /// Whether a flow may name `set`: none (0), or an allocated set.
    pub(crate) fn nameable(&self, set: u16) -> bool {
        set == 0 || self.allocated.get(usize::from(set)).copied().unwrap_or(false)
    }

    pub(crate) fn retain(&mut self, set: u16) {
        if set != 0
            && let Some(r) = self.refs.get_mut(usize::from(set))
        {
            *r += 1;
        }
    }

    pub(crate) fn release(&mut self, set: u16) {
        if set != 0
            && let Some(r) = self.refs.get_mut(usize::from(set))
        {
            *r = r.saturating_sub(1);
        }
    }

    /// Sets to read so that every allocated one is included: the highest allocated plus one.
    fn span(&self) -> u32 {
        self.allocated.iter().rposition(|a| *a).map_or(0, |i| i as u32 + 1)
    }

    /// The allocation commands for every allocated set (a reset NIC has none).
    pub(crate) fn realloc_commands(&self) -> Vec<FlowCommand> {
        self.allocated
            .iter()
            .enumerate()
            .filter(|(_, a)| **a)
            .map(|(n, _)| Nic::counter_set_alloc_command(n as u16))
            .collect()
    }
}

impl FlowTable {
    /// Sets in the NIC's bank, set 0 (none) included; 0 when it has none.
    pub fn counter_set_capacity(&self) -> u32 {
        self.bank.allocated.len() as u32
    }

    /// Allocated counter sets.
    pub fn counter_sets_used(&self) -> u32 {
        self.bank.allocated.iter().filter(|a| **a).count() as u32
    }

    /// Installed flows that name `set`.
    pub fn counter_set_refs(&self, set: u16) -> u32 {
        self.bank.refs.get(usize::from(set)).copied().unwrap_or(0)
    }

    /// Allocates a counter set (the lowest free number; its counters start at zero) and queues
    /// its allocation command, ahead of any install that names it. `Full` when every set is
    /// taken (or the NIC has no bank): flows are then installed with no set.
    pub fn alloc_counter_set(&mut self) -> Result<u16, InstallError> {
        let Some(n) = self.bank.allocated.iter().skip(1).position(|a| !*a).map(|i| i + 1) else {
            return Err(InstallError::Full);
        };
        self.bank.allocated[n] = true;
        self.queue.push_back((Nic::counter_set_alloc_command(n as u16), Undo::Nothing));
        Ok(n as u16)
    }

    /// Frees a counter set. Refused, with nothing changed, while an installed flow names it
    /// (the NIC would refuse it too) or when it is not allocated.
    pub fn free_counter_set(&mut self, set: u16) -> Result<(), InstallError> {
        if set == 0 || !self.bank.nameable(set) {
            return Err(InstallError::Invalid(format!("counter set {set} is not allocated")));
        }
        let refs = self.bank.refs[usize::from(set)];
        if refs > 0 {
            return Err(InstallError::Invalid(format!(
                "counter set {set} is named by {refs} installed flow(s)"
            )));
        }
        self.bank.allocated[usize::from(set)] = false;
        self.queue.push_back((Nic::counter_set_free_command(set), Undo::Nothing));
        Ok(())
    }

    /// Moves a flow to another counter set (its connection moved to another real server): its
    /// packets and bytes from now on count into `set`. The old set keeps what it counted.
    pub fn set_flow_counter_set(&mut self, h: Handle, set: u16) -> Result<(), InstallError> {
        if !self.bank.nameable(set) {
            return Err(InstallError::Invalid(format!("counter set {set} is not allocated")));
        }
        let old = self.get(h).ok_or_else(|| crate::table::no_flow(h))?.counter_set;
        let flow = self.records.set_counter_set(h.0, set).ok_or_else(|| crate::table::no_flow(h))?;
        let rec = Self::record_of(&flow);
        self.bank.release(old);
        self.bank.retain(set);
        let mut cmd = FlowCommand {
            opcode: rtl_spec::codes::Opcode::Modify.into(),
            record: U32::new(h.0),
            arg: ModifyMask::new().with_counter_set(true).into_bits(),
            ..FlowCommand::default()
        };
        cmd.payload[..128].copy_from_slice(rec.as_bytes());
        self.queue.push_back((cmd, Undo::Nothing));
        Ok(())
    }

    /// Reads the bank: every set up to the highest allocated, with one `CounterBankRead` (one DMA
    /// write), by set number (free sets read as zeros). Commands queued or in flight are
    /// completed first (their refusals stay for [`Self::take_refused`]). The cost is O(sets),
    /// never O(flows).
    pub fn read_counter_bank(&mut self) -> Result<&[CounterSet], DriverError> {
        if let Some(f) = &self.fault {
            return Err(DriverError::BringUp(format!("the NIC is lost ({})", f.last_error)));
        }
        let refused = self.commit()?;
        self.refused.extend(refused);
        let span = self.bank.span();
        if span == 0 {
            self.bank.last.clear();
            return Ok(&self.bank.last);
        }
        if self.bank.buf.is_none() {
            self.bank.buf = Some(self.nic.counter_bank_buffer()?);
        }
        let buf = self.bank.buf.as_ref().expect("allocated above");
        self.nic.read_counter_bank(buf, span, &mut self.bank.last)?;
        Ok(&self.bank.last)
    }

    /// After a device reset or reconnection: the read buffer is given back (best effort: a
    /// reconnected transport may not know it any more) and the next read allocates one afresh.
    pub(crate) fn forget_bank_buffer(&mut self) {
        if let Some(buf) = self.bank.buf.take() {
            let _ = self.nic.transport().free_dma(buf.region());
        }
    }

    /// At adoption after a daemon restart: the old run's sets are freed in the NIC (the map
    /// from sets to servers did not survive it), after a flush so that no record names them.
    /// Refusals (sets that were free) are expected and ignored.
    pub(crate) fn free_stale_sets(&mut self) -> Result<(), DriverError> {
        let Ok(base) = self.nic.block(rtl_spec::codes::BlockType::NextHop) else { return Ok(()) };
        if self.bank.allocated.is_empty()
            || self.nic.transport().read32(base + rtl_spec::regs::next_hop::COUNTER_SETS_USED) == 0
        {
            return Ok(());
        }
        let mut cmds =
            vec![FlowCommand { opcode: rtl_spec::codes::Opcode::Flush.into(), ..FlowCommand::default() }];
        cmds.extend((1..self.bank.allocated.len()).map(|n| Nic::counter_set_free_command(n as u16)));
        self.nic.execute(&cmds)?;
        Ok(())
    }
}
