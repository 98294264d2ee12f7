//! The device's counters as one snapshot: global datapath counters, punts and drops by
//! reason, per-port counters and the flow table's occupancy and command counters, read from
//! the registers the block chain located. And the per-port settings the host chooses (MAC,
//! MTU).

use super::{BlockMap, Nic};
use crate::error::DriverError;
use crate::transport::Transport;
use rtl_spec::codes::BlockType;
use rtl_spec::regs::{counters, flow_table, ports};

/// One port's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Link up.
    pub link: bool,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames dropped at the port.
    pub drops: u64,
}

/// Everything the device counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Frames received on all ports.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent by the datapath on a hit.
    pub tx_packets: u64,
    /// Bytes sent on a hit.
    pub tx_bytes: u64,
    /// Lookups that hit a record.
    pub hits: u64,
    /// Lookups that missed.
    pub misses: u64,
    /// Frames punted to the host.
    pub punts: u64,
    /// Frames dropped.
    pub drops: u64,
    /// Frames sent from the inject ring.
    pub injected: u64,
    /// Events written.
    pub events: u64,
    /// Events lost to a full event ring.
    pub events_lost: u64,
    /// Punts by `PuntReason` (index = code).
    pub punt_reason: [u64; 16],
    /// Drops by `DropReason` (index = code).
    pub drop_reason: [u64; 16],
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
        rx_packets: t.read64(cb + counters::RX_PACKETS),
        rx_bytes: t.read64(cb + counters::RX_BYTES),
        tx_packets: t.read64(cb + counters::TX_PACKETS),
        tx_bytes: t.read64(cb + counters::TX_BYTES),
        hits: t.read64(cb + counters::HITS),
        misses: t.read64(cb + counters::MISSES),
        punts: t.read64(cb + counters::PUNTS),
        drops: t.read64(cb + counters::DROPS),
        injected: t.read64(cb + counters::INJECTED),
        events: t.read64(cb + counters::EVENTS),
        events_lost: t.read64(cb + counters::EVENTS_LOST),
        occupancy: t.read32(fb + flow_table::OCCUPANCY),
        index_used: t.read32(fb + flow_table::INDEX_USED),
        stash_used: t.read32(fb + flow_table::STASH_USED),
        inserts: t.read64(fb + flow_table::INSERTS),
        deletes: t.read64(fb + flow_table::DELETES),
        fails: t.read64(fb + flow_table::FAILS),
        ..DeviceCounters::default()
    };
    for n in 0..16u32 {
        c.punt_reason[n as usize] = t.read64(cb + counters::PUNT_REASON + 8 * n);
        c.drop_reason[n as usize] = t.read64(cb + counters::DROP_REASON + 8 * n);
    }
    for n in 0..nports {
        let r = pb + n * 0x40;
        c.ports.push(PortCounters {
            link: t.read32(r + ports::PORT_STATUS) & 1 != 0,
            rx_packets: t.read64(r + ports::PORT_RX_PACKETS),
            rx_bytes: t.read64(r + ports::PORT_RX_BYTES),
            tx_packets: t.read64(r + ports::PORT_TX_PACKETS),
            tx_bytes: t.read64(r + ports::PORT_TX_BYTES),
            drops: t.read64(r + ports::PORT_DROPS),
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
    let r = blocks.base(BlockType::Ports)? + u32::from(n) * 0x40;
    t.write32(r + ports::PORT_MTU, mtu);
    t.write32(r + ports::PORT_MAC_LO, u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
    t.write32(r + ports::PORT_MAC_HI, u32::from(u16::from_le_bytes([mac[4], mac[5]])));
    Ok(())
}
