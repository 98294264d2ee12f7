//! The counter bank (spec 1.2): the commands that allocate and free a set, and the bulk read.
//!
//! The host reads the whole bank with one `CounterBankRead` command: the NIC writes every set
//! (32 bytes each) into a host buffer in one DMA write, so the figures for every real server
//! cost one command and `sets × 32` bytes whatever the number of flows. The buffer is allocated
//! once ([`Nic::counter_bank_buffer`]) and reused for every read.

use super::Nic;
use crate::dma::DmaRegion;
use crate::error::DriverError;
use rtl_spec::codes::{Opcode, Status};
use rtl_spec::formats::{CounterSet, FlowCommand};
use zerocopy::FromBytes;
use zerocopy::little_endian::U32;

/// Host memory the bank is read into, sized for the device's whole bank.
#[derive(Debug)]
pub struct CounterBankBuffer {
    region: DmaRegion,
    sets: u32,
}

impl CounterBankBuffer {
    /// Sets the buffer holds (the device's `COUNTER_SETS`).
    pub fn sets(&self) -> u32 {
        self.sets
    }

    /// The DMA region (to free it with the transport).
    pub fn region(&self) -> &DmaRegion {
        &self.region
    }
}

impl Nic {
    /// Sets in the device's counter bank, set 0 (none) included; 0 when the device has none
    /// (older than spec 1.2).
    pub fn counter_sets(&self) -> u32 {
        self.info().geometry.counter_sets
    }

    /// The command that allocates counter set `set` (zeroed, and nameable by records).
    pub fn counter_set_alloc_command(set: u16) -> FlowCommand {
        FlowCommand {
            opcode: Opcode::CounterSetAlloc.into(),
            arg: U32::new(u32::from(set)),
            ..FlowCommand::default()
        }
    }

    /// The command that frees counter set `set`; the device refuses it (`CounterSetInUse`)
    /// while a live record names the set.
    pub fn counter_set_free_command(set: u16) -> FlowCommand {
        FlowCommand {
            opcode: Opcode::CounterSetFree.into(),
            arg: U32::new(u32::from(set)),
            ..FlowCommand::default()
        }
    }

    /// A buffer for [`Self::read_counter_bank`], sized for the whole bank.
    pub fn counter_bank_buffer(&mut self) -> Result<CounterBankBuffer, DriverError> {
        let sets = self.counter_sets();
        if sets == 0 {
            return Err(DriverError::BringUp(
                "the device has no counter bank (specification before 1.2)".into(),
            ));
        }
        let region = self.transport().alloc_dma(sets as usize * size_of::<CounterSet>())?;
        Ok(CounterBankBuffer { region, sets })
    }

    /// Reads the first `count` sets of the bank (all of them when `count` is 0 or beyond the
    /// bank) with one `CounterBankRead` command and one DMA write into `buf`, and puts them in
    /// `out` (cleared first), by set number. Waits for the command's completion: call it with
    /// no other command outstanding (the flow table commits first).
    pub fn read_counter_bank(
        &mut self,
        buf: &CounterBankBuffer,
        count: u32,
        out: &mut Vec<CounterSet>,
    ) -> Result<(), DriverError> {
        let count = if count == 0 || count > buf.sets { buf.sets } else { count };
        let cmd = FlowCommand {
            opcode: Opcode::CounterBankRead.into(),
            arg: U32::new(count),
            dma_addr: buf.region.iova().into(),
            ..FlowCommand::default()
        };
        let cpl = self.execute(&[cmd])?;
        let status = cpl.first().map_or(Status::DmaError as u8, |c| c.status);
        if status != Status::Ok as u8 {
            return Err(DriverError::Refused { op: "CounterBankRead", status });
        }
        let mut bytes = vec![0u8; count as usize * size_of::<CounterSet>()];
        buf.region.read(0, &mut bytes);
        out.clear();
        out.extend(
            bytes
                .chunks_exact(size_of::<CounterSet>())
                .map(|c| CounterSet::read_from_bytes(c).unwrap_or_default()),
        );
        Ok(())
    }
}
