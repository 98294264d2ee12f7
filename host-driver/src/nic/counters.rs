//! The device's counters as one snapshot: global datapath counters, punts and drops by
//! reason, per-port counters and the flow table's occupancy and command counters, read from
//! the registers the block chain located. And the per-port settings the host chooses (MAC,
//! MTU).

use super::{BlockMap, Nic};
use crate::error::DriverError;
use crate::transport::Transport;
use rtl_spec::codes::BlockType;
use rtl_spec::counters::{DatapathCounters, PORT_STRIDE};
use rtl_spec::regs::{flow_table, ports};

/// One port's counters (the contract's [`rtl_spec::counters::PortCounters`], read through
/// `Deref`) and its link state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Link up.
    pub link: bool,
    /// The port's counter registers.
    pub counters: rtl_spec::counters::PortCounters,
}

impl std::ops::Deref for PortCounters {
    type Target = rtl_spec::counters::PortCounters;
    fn deref(&self) -> &Self::Target {
        &self.counters
    }
}

/// Everything the device counts: the datapath's `COUNTERS` block (the contract's
/// [`DatapathCounters`], read through `Deref`, as `c.hits`), each port, and the flow table's
/// occupancy and command counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// The `COUNTERS` block.
    pub datapath: DatapathCounters,
    /// Per port.
    pub ports: Vec<PortCounters>,
    /// Live records.
    pub occupancy: u32,
    /// Live index slots.
    pub index_used: u32,
    /// Live stash entries.
    pub stash_used: u32,
    /// Successful inserts.
    pub inserts: u64,
    /// Deletes (host, ager, flush).
    pub deletes: u64,
    /// Commands that failed.
    pub fails: u64,
}

impl std::ops::Deref for DeviceCounters {
    type Target = DatapathCounters;
    fn deref(&self) -> &Self::Target {
        &self.datapath
    }
}

impl std::ops::DerefMut for DeviceCounters {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.datapath
    }
}

impl Nic {
    /// Reads every counter.
    pub fn read_counters(&mut self) -> Result<DeviceCounters, DriverError> {
        read(&mut *self.link.lock(), &self.blocks, self.info.ports.len())
    }

    /// Sets port `n`'s IP MTU (packets over it are punted, reason `OverMtu`) and MAC.
    pub fn configure_port(&mut self, n: u8, mtu: u32, mac: [u8; 6]) -> Result<(), DriverError> {
        configure_port(&mut *self.link.lock(), &self.blocks, self.info.ports.len(), n, mtu, mac)
    }
}

/// Reads every counter of a device with `nports` ports whose blocks are at `blocks`.
pub(crate) fn read(
    t: &mut dyn Transport,
    blocks: &BlockMap,
    nports: usize,
) -> Result<DeviceCounters, DriverError> {
    let cb = blocks.base(BlockType::Counters)?;
    let fb = blocks.base(BlockType::FlowTable)?;
    let pb = blocks.base(BlockType::Ports)?;
    let nports = nports as u32;
    let mut c = DeviceCounters {
        datapath: DatapathCounters::read_with(|off| t.read64(cb + off)),
        occupancy: t.read32(fb + flow_table::OCCUPANCY),
        index_used: t.read32(fb + flow_table::INDEX_USED),
        stash_used: t.read32(fb + flow_table::STASH_USED),
        inserts: t.read64(fb + flow_table::INSERTS),
        deletes: t.read64(fb + flow_table::DELETES),
        fails: t.read64(fb + flow_table::FAILS),
        ..DeviceCounters::default()
    };
    for n in 0..nports {
        let r = pb + n * PORT_STRIDE;
        c.ports.push(PortCounters {
            link: t.read32(r + ports::PORT_STATUS) & 1 != 0,
            counters: rtl_spec::counters::PortCounters::read_with(|off| t.read64(r + off)),
        });
    }
    Ok(c)
}

/// Sets port `n`'s IP MTU and MAC on a device with `nports` ports.
pub(crate) fn configure_port(
    t: &mut dyn Transport,
    blocks: &BlockMap,
    nports: usize,
    n: u8,
    mtu: u32,
    mac: [u8; 6],
) -> Result<(), DriverError> {
    if usize::from(n) >= nports {
        return Err(DriverError::BringUp(format!("port {n}: the device has {nports}")));
    }
    let r = blocks.base(BlockType::Ports)? + u32::from(n) * PORT_STRIDE;
    t.write32(r + ports::PORT_MTU, mtu);
    t.write32(r + ports::PORT_MAC_LO, u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
    t.write32(r + ports::PORT_MAC_HI, u32::from(u16::from_le_bytes([mac[4], mac[5]])));
    Ok(())
}
