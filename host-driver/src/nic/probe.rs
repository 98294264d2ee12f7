//! Discovery: the identity check, the spec-version check, the walk of the block chain, and
//! what the device offers ([`DeviceInfo`]). Reads only; changes nothing on the device.

use crate::error::DriverError;
use crate::transport::Transport;
use rtl_spec::codes::BlockType;
use rtl_spec::regs::{flow_table, header, identity, interrupts, next_hop, ports, rings};
use rtl_spec::{SPEC_MAJOR, SPEC_MINOR};
use serde::Serialize;
use std::collections::BTreeMap;

/// The longest chain the driver follows before calling it broken.
const MAX_BLOCKS: usize = 64;

/// A register block found in the chain.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block's name in the specification, or "unknown".
    pub name: String,
    /// Its type word.
    pub block_type: u32,
    /// Its version, "major.minor".
    pub version: String,
    /// Its BAR0 offset.
    pub base: u32,
}

/// The flow table's geometry and hash.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Geometry {
    /// Flow records.
    pub records: u32,
    /// Index buckets.
    pub buckets: u32,
    /// Slots per bucket.
    pub slots_per_bucket: u32,
    /// Stash entries.
    pub stash: u32,
    /// Bytes per record.
    pub record_size: u32,
    /// Hash function id (1 = CRC-32C).
    pub hash_id: u32,
    /// First-choice seed.
    pub seed_a: u32,
    /// Second-choice seed.
    pub seed_b: u32,
    /// Next-hop entries.
    pub next_hops: u32,
    /// Sets in the counter bank, set 0 (none) included; 0 on a device older than spec 1.2,
    /// which has no bank.
    pub counter_sets: u32,
}

/// One Ethernet port.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PortInfo {
    /// Port number.
    pub index: u32,
    /// MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Link up.
    pub link: bool,
    /// IP MTU.
    pub mtu: u32,
}

/// What `sluice device info` prints.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeviceInfo {
    /// How the device is reached.
    pub transport: String,
    /// The device's specification version, "major.minor".
    pub spec_version: String,
    /// The version this driver implements.
    pub driver_spec_version: String,
    /// Build id of the running image.
    pub build_id: u32,
    /// Build time, seconds since the epoch.
    pub build_time: u64,
    /// Capability bits.
    pub capabilities: u64,
    /// Names of the capability bits that are set.
    pub capability_names: Vec<String>,
    /// Blocks in chain order.
    pub blocks: Vec<BlockInfo>,
    /// Flow-table geometry.
    pub geometry: Geometry,
    /// The Ethernet ports the device has, in index order.
    pub ports: Vec<PortInfo>,
    /// Rings in the device.
    pub rings: u32,
    /// Exception rings (slow-path workers the device can feed).
    pub exception_rings: u32,
    /// MSI-X vectors.
    pub vectors: u32,
}

/// Block bases by type, from the chain walk.
#[derive(Clone, Debug, Default)]
pub struct BlockMap(BTreeMap<u32, u32>);

impl BlockMap {
    /// The base of a block the driver needs.
    pub fn base(&self, t: BlockType) -> Result<u32, DriverError> {
        self.0
            .get(&(t as u32))
            .copied()
            .ok_or_else(|| DriverError::BlockChain(format!("the device has no {} block", t.name())))
    }
}

/// Checks the identity block and the specification version.
pub fn identify(t: &mut dyn Transport) -> Result<(u16, u16), DriverError> {
    let type_word = t.read32(identity::BASE + header::TYPE);
    let magic = t.read32(identity::BASE + identity::MAGIC);
    if type_word != BlockType::Identity as u32 || magic != rtl_spec::MAGIC {
        return Err(DriverError::NotASluiceDevice { type_word, magic });
    }
    let v = u64::from(t.read32(identity::BASE + identity::SPEC_VERSION));
    let device = (identity::SPEC_VERSION::MAJOR.get(v) as u16, identity::SPEC_VERSION::MINOR.get(v) as u16);
    if device.0 != SPEC_MAJOR {
        return Err(DriverError::VersionMismatch { device, driver: (SPEC_MAJOR, SPEC_MINOR) });
    }
    Ok(device)
}

/// Walks the block chain from offset 0.
pub fn walk_chain(t: &mut dyn Transport) -> Result<(BlockMap, Vec<BlockInfo>), DriverError> {
    let bar = rtl_spec::regs::BAR0_SIZE as u32;
    let mut map = BlockMap::default();
    let mut list = Vec::new();
    let mut at = 0u32;
    loop {
        if list.len() >= MAX_BLOCKS {
            return Err(DriverError::BlockChain(format!("more than {MAX_BLOCKS} blocks: the chain loops")));
        }
        if at % 4 != 0 || at.checked_add(12).is_none_or(|end| end > bar) {
            return Err(DriverError::BlockChain(format!("NEXT points outside BAR0 or unaligned: {at:#x}")));
        }
        let block_type = t.read32(at + header::TYPE);
        let version = t.read32(at + header::VERSION);
        let next = t.read32(at + header::NEXT);
        if map.0.insert(block_type, at).is_some() {
            return Err(DriverError::BlockChain(format!("block type {block_type:#010x} appears twice")));
        }
        let spec = rtl_spec::regs::ALL_BLOCKS.iter().find(|b| b.block_type == block_type);
        if let Some(spec) = spec {
            if version >> 16 != spec.version >> 16 {
                return Err(DriverError::BlockChain(format!(
                    "block {} has version {}.{}, this driver knows {}.{}",
                    spec.name,
                    version >> 16,
                    version & 0xffff,
                    spec.version >> 16,
                    spec.version & 0xffff
                )));
            }
        }
        list.push(BlockInfo {
            name: spec.map_or("unknown", |s| s.name).to_string(),
            block_type,
            version: format!("{}.{}", version >> 16, version & 0xffff),
            base: at,
        });
        if next == 0 {
            break;
        }
        at = next;
    }
    Ok((map, list))
}

fn mac_string(lo: u32, hi: u32) -> String {
    let b = [lo.to_le_bytes(), hi.to_le_bytes()].concat();
    b[..6].iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

/// Identifies the device, walks the chain and reads what it offers.
pub fn probe(t: &mut dyn Transport) -> Result<(DeviceInfo, BlockMap), DriverError> {
    let version = identify(t)?;
    let (map, blocks) = walk_chain(t)?;
    let ft = map.base(BlockType::FlowTable)?;
    let nh = map.base(BlockType::NextHop)?;
    let pb = map.base(BlockType::Ports)?;
    let rb = map.base(BlockType::Rings)?;
    let ib = map.base(BlockType::Interrupts)?;
    let caps = t.read64(identity::BASE + identity::CAPS);
    let cap_spec = rtl_spec::regs::identity::SPEC.registers.iter().find(|r| r.name == "CAPS");
    let capability_names = cap_spec
        .map(|r| r.fields.iter().filter(|f| f.bits.get(caps) != 0).map(|f| f.name.to_string()).collect())
        .unwrap_or_default();
    let geometry = Geometry {
        records: t.read32(ft + flow_table::RECORDS),
        buckets: t.read32(ft + flow_table::BUCKETS),
        slots_per_bucket: t.read32(ft + flow_table::SLOTS_PER_BUCKET),
        stash: t.read32(ft + flow_table::STASH_SIZE),
        record_size: t.read32(ft + flow_table::RECORD_SIZE),
        hash_id: t.read32(ft + flow_table::HASH),
        seed_a: t.read32(ft + flow_table::SEED_A),
        seed_b: t.read32(ft + flow_table::SEED_B),
        next_hops: t.read32(nh + next_hop::ENTRIES),
        counter_sets: if version >= (1, 2) { t.read32(nh + next_hop::COUNTER_SETS) } else { 0 },
    };
    if geometry.record_size != 128 || !geometry.buckets.is_power_of_two() || geometry.hash_id != 1 {
        return Err(DriverError::BringUp(format!(
            "unsupported flow table: record size {}, {} buckets, hash {}",
            geometry.record_size, geometry.buckets, geometry.hash_id
        )));
    }
    let count = t.read32(pb + ports::COUNT).min(8);
    let stride = t.read32(pb + ports::STRIDE);
    let ports = (0..count)
        .map(|n| PortInfo {
            index: n,
            mac: mac_string(
                t.read32(pb + ports::PORT_MAC_LO + n * stride),
                t.read32(pb + ports::PORT_MAC_HI + n * stride),
            ),
            link: t.read32(pb + ports::PORT_STATUS + n * stride) & 1 != 0,
            mtu: t.read32(pb + ports::PORT_MTU + n * stride),
        })
        .collect();
    let info = DeviceInfo {
        transport: t.describe(),
        spec_version: format!("{}.{}", version.0, version.1),
        driver_spec_version: format!("{SPEC_MAJOR}.{SPEC_MINOR}"),
        build_id: t.read32(identity::BASE + identity::BUILD_ID),
        build_time: t.read64(identity::BASE + identity::BUILD_TIME),
        capabilities: caps,
        capability_names,
        blocks,
        geometry,
        ports,
        rings: t.read32(rb + rings::COUNT),
        exception_rings: t.read32(rb + rings::EXCEPTION_RINGS),
        vectors: t.read32(ib + interrupts::VECTORS),
    };
    Ok((info, map))
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = &self.geometry;
        writeln!(f, "device         {}", self.transport)?;
        writeln!(f, "spec version   {} (driver {})", self.spec_version, self.driver_spec_version)?;
        writeln!(f, "build          id {:#010x}, time {}", self.build_id, self.build_time)?;
        writeln!(f, "capabilities   {:#x} {}", self.capabilities, self.capability_names.join(" "))?;
        writeln!(
            f,
            "flow table     {} records × {} B, {} buckets × {} slots, stash {}, hash {} (seeds {:#010x} {:#010x})",
            g.records,
            g.record_size,
            g.buckets,
            g.slots_per_bucket,
            g.stash,
            if g.hash_id == 1 { "crc32c" } else { "unknown" },
            g.seed_a,
            g.seed_b
        )?;
        writeln!(f, "next hops      {}", g.next_hops)?;
        if g.counter_sets > 0 {
            writeln!(f, "counter sets   {}", g.counter_sets)?;
        }
        writeln!(
            f,
            "rings          {} ({} exception), {} MSI-X vectors",
            self.rings, self.exception_rings, self.vectors
        )?;
        for p in &self.ports {
            writeln!(
                f,
                "port {:<9} {}  link {}  mtu {}",
                p.index,
                p.mac,
                if p.link { "up" } else { "down" },
                p.mtu
            )?;
        }
        write!(f, "blocks        ")?;
        for b in &self.blocks {
            write!(f, " {}@{:#x}", b.name, b.base)?;
        }
        writeln!(f)
    }
}
