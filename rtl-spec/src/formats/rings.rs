//! Ring entries: flow commands and their completions, exception descriptors (punted packets),
//! inject descriptors (packets the host sends) and events.
//!
//! Every entry carries a phase bit. Ring indices are free-running 32-bit counters; an entry's
//! slot is `index & (size - 1)` and the phase written with it is 1 on the first lap, 0 on the
//! second, and so on ([`crate::ring::phase_for`]). A consumer knows an entry is new when its phase
//! is the one expected for the consumer's lap, so zeroed memory never looks like an entry.

// bitfield-struct generates `with_*` builders and fallible `try_*` accessors (Result<_, ()>).
#![allow(clippy::return_self_not_must_use, clippy::result_unit_err)]

use crate::meta::{hw_bits, hw_format};
use zerocopy::little_endian::{U16, U32, U64};

hw_bits! {
    /// Flags of a flow command.
    pub struct CommandFlags: u16 as U16 {
        /// Phase bit for the command's lap of the ring.
        phase: bool = 1,
        /// Delete: report the record's final counters in a flow-info event (cause HOST).
        report: bool = 1,
        /// Query: zero the record's counters after reading them.
        clear: bool = 1,
        /// Zero.
        reserved: u16 = 13,
    }
}

hw_format! {
    /// A flow command (host → NIC), 256 bytes. The payload depends on the opcode: a
    /// [`crate::formats::FlowRecord`] for Insert and Modify, followed at bytes 128..132 by the
    /// record's [`crate::formats::RecordExt`] (since 1.4; zero from an older host), a [`crate::formats::NextHopEntry`] for
    /// NextHopSet (followed by a [`crate::formats::NextHopTunnel`] for a `Tunnel` entry), an
    /// [`crate::formats::IndexSlot`] for IndexWrite; zero otherwise (the counter
    /// set commands take none).
    pub struct FlowCommand (256 bytes) {
        /// [`crate::codes::Opcode`].
        pub opcode: u8,
        /// Zero.
        pub reserved0: u8,
        /// Phase and modifiers.
        pub flags: CommandFlags,
        /// Record index the command acts on.
        pub record: U32,
        /// Opaque to the NIC; echoed in the completion.
        pub cookie: U64,
        /// Insert/Delete: the original tuple's index slot. IndexWrite: the slot to write.
        /// IndexMove: the slot to move from.
        pub slot_orig: crate::formats::IndexPos,
        /// Insert/Delete: the reply tuple's index slot. IndexMove: the slot to move to.
        pub slot_reply: crate::formats::IndexPos,
        /// NextHopSet: the entry number. Modify: a [`crate::formats::ModifyMask`].
        /// CounterSetAlloc, CounterSetFree: the set number. CounterBankRead: how many sets to
        /// write, from set 0 (0: the whole bank).
        pub arg: U32,
        /// Zero.
        pub reserved1: U32,
        /// Read: where in host memory the 128-byte record is written. CounterBankRead: where the
        /// sets are written, 32 bytes each ([`crate::formats::CounterSet`]), in one DMA write.
        pub dma_addr: U64,
        /// Zero.
        pub reserved2: [u8; 24],
        /// Opcode-specific payload.
        pub payload: [u8; 192],
    }
}

hw_bits! {
    /// Which parts of a record a Modify command rewrites (command field `arg`).
    pub struct ModifyMask: u32 as U32 {
        /// Both directions' `next_hop`.
        next_hops: bool = 1,
        /// `idle_timeout`.
        idle_timeout: bool = 1,
        /// The `auto_delete` flag and `host_state`.
        flags: bool = 1,
        /// `seq_adjust` and `seq_delta`.
        seq_delta: bool = 1,
        /// `cookie`.
        cookie: bool = 1,
        /// Clear `teardown` (the host decided the flow goes on).
        clear_teardown: bool = 1,
        /// The record's counter set (since 1.2): the flow's packets and bytes from now on go to
        /// the new set (a flow moved to another server). The new set must be allocated.
        counter_set: bool = 1,
        /// The record's `ts_delta` (since 1.4), from the [`crate::formats::RecordExt`] at payload
        /// bytes 128..132. A non-zero value on a device without `TS_ADJUST` is refused
        /// (`BadArgument`).
        ts_delta: bool = 1,
        /// Zero; a command with any of these set completes with `BadArgument`.
        reserved: u32 = 24,
    }
}

hw_bits! {
    /// Flags of a completion.
    pub struct CompletionFlags: u16 as U16 {
        /// Phase bit.
        phase: bool = 1,
        /// Query: the record is marked for teardown.
        teardown: bool = 1,
        /// Zero.
        reserved: u16 = 14,
    }
}

hw_format! {
    /// A completion (NIC → host), one per command, in command order.
    pub struct Completion (64 bytes) {
        /// The command's opcode (as received, even if unknown).
        pub opcode: u8,
        /// [`crate::codes::Status`].
        pub status: u8,
        /// Phase and result flags.
        pub flags: CompletionFlags,
        /// The command's record index.
        pub record: U32,
        /// The command's cookie.
        pub cookie: U64,
        /// Query: packets hit in the original direction.
        pub packets_orig: U32,
        /// Query: packets hit in the reply direction.
        pub packets_reply: U32,
        /// Query: bytes hit in the original direction.
        pub bytes_orig: U64,
        /// Query: bytes hit in the reply direction.
        pub bytes_reply: U64,
        /// Query: milliseconds since the last hit (saturating).
        pub idle_ms: U32,
        /// Query: OR of TCP flags, original direction.
        pub tcp_flags_orig: u8,
        /// Query: OR of TCP flags, reply direction.
        pub tcp_flags_reply: u8,
        /// Zero.
        pub reserved0: U16,
        /// The command ring index (free-running) of the command this completes.
        pub index: U32,
        /// Read and Query (since 1.4): the record's `ts_delta` from the record extension memory
        /// ([`crate::formats::RecordExt`]), so a restarted host can adopt the flow whole. Zero
        /// for other commands.
        pub ts_delta: U32,
        /// Zero.
        pub reserved1: [u8; 8],
    }
}

hw_bits! {
    /// Flags of an exception descriptor.
    pub struct ExceptionFlags: u16 as U16 {
        /// Phase bit.
        phase: bool = 1,
        /// The packet matched a flow record: `record` and `cookie` are valid.
        hit: bool = 1,
        /// On a hit: the packet matched the reply tuple.
        reply: bool = 1,
        /// The frame carries an 802.1Q tag (still in the frame); `vlan_tci` is its TCI.
        vlan: bool = 1,
        /// The packet is IPv6.
        ipv6: bool = 1,
        /// Zero.
        reserved: u16 = 11,
    }
}

hw_format! {
    /// An exception descriptor (NIC → host): a punted packet. Its bytes are in the ring's buffer
    /// area at `BUF_BASE + slot × BUF_SIZE`, exactly as received.
    pub struct ExceptionDesc (32 bytes) {
        /// Frame length in bytes.
        pub length: U16,
        /// [`crate::codes::PuntReason`].
        pub reason: u8,
        /// Ingress port.
        pub port: u8,
        /// Phase and parse flags.
        pub flags: ExceptionFlags,
        /// 802.1Q TCI when `vlan` is set.
        pub vlan_tci: U16,
        /// The symmetric steering hash (see [`crate::hash::steering_hash`]); 0 for non-IP.
        pub hash: U32,
        /// On a hit: the record index.
        pub record: U32,
        /// Device time of arrival, nanoseconds.
        pub timestamp: U64,
        /// Offset of the IP header in the frame (0 for non-IP).
        pub l3_offset: u8,
        /// Offset of the transport header in the frame (0 when not parsed).
        pub l4_offset: u8,
        /// The exception ring (queue) this descriptor is on.
        pub queue: u8,
        /// Zero.
        pub reserved: u8,
        /// On a hit: the record's cookie.
        pub cookie: U32,
    }
}

hw_bits! {
    /// Flags of an inject descriptor.
    pub struct InjectFlags: u16 as U16 {
        /// Phase bit.
        phase: bool = 1,
        /// Zero.
        reserved: u16 = 15,
    }
}

hw_format! {
    /// An inject descriptor (host → NIC): a frame to send, unchanged, on a port. The NIC
    /// advances the ring's `CONS` when it no longer needs the buffer.
    pub struct InjectDesc (32 bytes) {
        /// Host address (IOVA) of the frame.
        pub addr: U64,
        /// Frame length in bytes (14 up to the port's MTU plus 18).
        pub length: U16,
        /// Egress port.
        pub port: u8,
        /// Zero.
        pub reserved0: u8,
        /// Phase.
        pub flags: InjectFlags,
        /// Zero.
        pub reserved1: U16,
        /// Opaque to the NIC.
        pub cookie: U64,
        /// Zero.
        pub reserved2: U64,
    }
}

hw_bits! {
    /// Flags of an event.
    pub struct EventFlags: u16 as U16 {
        /// Phase bit.
        phase: bool = 1,
        /// Flow-info: the record was still live after the event (the host must delete it).
        live: bool = 1,
        /// Link: the link is up.
        link_up: bool = 1,
        /// Zero.
        reserved: u16 = 13,
    }
}

hw_format! {
    /// An event (NIC → host).
    pub struct Event (64 bytes) {
        /// [`crate::codes::EventKind`].
        pub kind: u8,
        /// Flow-info: [`crate::codes::FlowCause`]. Error: [`crate::codes::ErrorCode`]. Flash:
        /// [`crate::codes::FlashEvent`].
        pub cause: u8,
        /// Phase and kind-specific flags.
        pub flags: EventFlags,
        /// Flow-info: the record index.
        pub record: U32,
        /// Device time of the event, nanoseconds.
        pub timestamp: U64,
        /// Flow-info: the record's cookie.
        pub cookie: U32,
        /// Flow-info: milliseconds since the record's last hit (saturating).
        pub idle_ms: U32,
        /// Flow-info: final packets, original direction.
        pub packets_orig: U32,
        /// Flow-info: final packets, reply direction.
        pub packets_reply: U32,
        /// Flow-info: final bytes, original direction.
        pub bytes_orig: U64,
        /// Flow-info: final bytes, reply direction.
        pub bytes_reply: U64,
        /// Flow-info: OR of TCP flags, original direction.
        pub tcp_flags_orig: u8,
        /// Flow-info: OR of TCP flags, reply direction.
        pub tcp_flags_reply: u8,
        /// Link: the port.
        pub port: u8,
        /// Zero.
        pub reserved0: u8,
        /// Error and flash: detail (lost event count, slot number...).
        pub data: U32,
        /// Zero.
        pub reserved1: U64,
    }
}
