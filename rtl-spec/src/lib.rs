//! # rtl_spec: the contract between the Sluice NIC and its host
//!
//! This crate is the one place where the hardware and the software agree. It holds no
//! behaviour, only definitions, each written once and used by both sides:
//!
//! - [`pci`]: the PCI identity;
//! - [`regs`]: BAR0, a chain of register blocks (identity, control, counters, flow table,
//!   next-hop table, ager, flash, punt control, interrupts, ports, rings) and the doorbells;
//! - [`formats`]: every structure in DMA memory or NIC table memory (flow record, index,
//!   next hop, commands, completions, exception and inject descriptors, events) and the
//!   firmware image header and flash state record, as zerocopy types;
//! - [`image`]: what both sides compute from an image: its header, its SHA-256, and the model
//!   configuration a model image carries with the geometry it declares;
//! - [`clock`]: the injected time both the model and the host read;
//! - [`codes`]: opcodes, statuses, punt and drop reasons, event causes;
//! - [`counters`]: the counter blocks as structs with their register tables, which the model
//!   counts into and the driver reads into;
//! - [`hash`]: the index and steering hashes, with known-answer vectors;
//! - [`ring`]: free-running ring indices and phase bits;
//! - [`wire`]: the layouts of the Ethernet, 802.1Q, IPv4, IPv6, TCP and UDP headers the NIC
//!   parses and rewrites (zerocopy views, shared with the host's slow path);
//! - [`doc`]: `SPEC.md` and its JSON twin, generated from all of the above; [`doc_sv`] and
//!   [`doc_rdl`]: the same tables as a SystemVerilog package and as SystemRDL, for the RTL.
//!
//! The sim-model implements this crate; the driver drives it. Neither sees the other's types.
#![deny(unsafe_op_in_unsafe_fn)]
// One `unsafe` block in all: the call of the SSE4.2 key hash once the CPU is known to have it
// (`hash::key_crc`).
#![deny(unsafe_code)]

pub mod checksum;
pub mod clock;
pub mod codes;
pub mod counters;
pub mod doc;
pub mod doc_rdl;
pub mod doc_sv;
pub mod formats;
pub mod hash;
pub mod image;
mod meta;
pub mod pci;
pub mod regs;
pub mod ring;
pub mod wire;

pub use meta::{
    Access, BitField, Bits, BlockSpec, CodeValue, EnumSpec, FieldLayout, FieldSpec, FieldType, Format,
    FormatSpec, RegSpec, UnknownCode,
};

/// Major version of this specification. A driver refuses a device with another major.
pub const SPEC_MAJOR: u16 = 1;
/// Minor version of this specification: additions an older driver may ignore. 1.1 added the
/// firmware image format, the flash state record, the image checks, and the flash controller's
/// boot status fields, `BOOT_TRIES`, `BOOT_LIMIT` and the `SlotInUse` result. 1.2 added the
/// counter bank: the `CounterSet` format, the record's `counter_set` (in bits that were
/// reserved), the opcodes `CounterSetAlloc`, `CounterSetFree` and `CounterBankRead`, the
/// `counter_set` Modify bit, the `CounterSet*` statuses and the next-hop block's `COUNTER_*`
/// and `BANK_READS` registers (block version 1.1). 1.3 added the forwarding actions of a next hop
/// for LVS's DR and TUN modes: `NextHopCtl.action` (in bits that were reserved),
/// the `NextHopAction` codes, the `NextHopTunnel` format (the second half of the `NextHopSet`
/// payload) and the `TUNNEL` capability. 1.4 added TCP timestamp translation for SYN-proxied
/// flows: the record extension memory and its `RecordExt` format (`ts_delta`), carried at payload
/// bytes 128..132 of Insert and Modify, the `ts_delta` Modify bit, the completion's `ts_delta`
/// (Read and Query, in bytes that were reserved) and the `TS_ADJUST` capability. 1.5 added the
/// `IndexMove` opcode (a cuckoo move in one command where it took two `IndexWrite`s), its
/// `SlotNotLive` status and the `INDEX_MOVE` capability.
pub const SPEC_MINOR: u16 = 5;
/// The version as the identity block's `SPEC_VERSION` register holds it.
pub const SPEC_VERSION: u32 = ((SPEC_MAJOR as u32) << 16) | SPEC_MINOR as u32;
/// The identity block's `MAGIC` value.
pub const MAGIC: u32 = 0x534C_4345;

const _: () = assert!(regs::identity::SPEC.registers[4].reset == SPEC_VERSION as u64);
const _: () = assert!(regs::identity::SPEC.registers[3].reset == MAGIC as u64);
const _: () = assert!(regs::next_hop::SPEC.registers[6].reset == formats::COUNTER_SETS as u64);
const _: () =
    assert!(regs::next_hop::SPEC.registers[7].reset == core::mem::size_of::<formats::CounterSet>() as u64);
