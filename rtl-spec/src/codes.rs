//! The codes the NIC and the host exchange: block types, opcodes, completion statuses, punt and
//! drop reasons, event kinds and causes. Every value is stable: a value once published is never
//! reused for something else, and an unknown value is rejected by `TryFrom`, never guessed.

use crate::meta::hw_enum;

hw_enum! {
    /// The type word at offset 0 of every register block. The upper half is the vendor
    /// (`0x534C`, "SL"), the lower half the block.
    pub enum BlockType: u32 {
        /// Identity: magic, spec version, build id, capabilities. Always at BAR0 offset 0.
        Identity = 0x534C_0001,
        /// Control and status: reset, enable, error status, scratch, the device clock.
        Control = 0x534C_0002,
        /// Ethernet ports: MAC, link, MTU, counters.
        Ports = 0x534C_0003,
        /// Flow table: geometry, hash, occupancy and command counters.
        FlowTable = 0x534C_0004,
        /// Next-hop table geometry.
        NextHop = 0x534C_0005,
        /// DMA rings: base, size, indices, doorbell location, for every ring.
        Rings = 0x534C_0006,
        /// MSI-X vector map, arming and coalescing.
        Interrupts = 0x534C_0007,
        /// The ager: scan period, tick, counters.
        Ager = 0x534C_0008,
        /// Punt control: queue steering and reason-to-queue map.
        Punt = 0x534C_0009,
        /// Global datapath counters and per-reason punt and drop counters.
        Counters = 0x534C_000A,
        /// Flash controller: two image slots, erase/program/verify/activate, boot status.
        Flash = 0x534C_000B,
    }
}

hw_enum! {
    /// What a flow command asks the NIC to do.
    pub enum Opcode: u8 {
        /// Write the record at `record` and, in the same step, the two index slots named by
        /// `slot_orig` and `slot_reply`. The record must be free and the slots empty. Since 1.4
        /// the record's extension word ([`crate::formats::RecordExt`], payload bytes 128..132)
        /// is written with it, always, zero included.
        Insert = 1,
        /// Clear the record at `record` (and, since 1.4, its extension word) and the two index
        /// slots named; the slots must point at the record. With `REPORT` the final counters come back in a flow-info event (cause HOST).
        Delete = 2,
        /// Rewrite the mutable parts of a live record chosen by the `arg` mask (see
        /// [`crate::formats::ModifyMask`]); tuples and counters are kept.
        Modify = 3,
        /// Return a live record's counters, TCP flags and idle time in the completion, and
        /// (since 1.4) its `ts_delta`. With `CLEAR` the counters are zeroed after being read.
        Query = 4,
        /// Set a live record's last-seen time to now.
        Touch = 5,
        /// Clear every record, every index slot and (since 1.4) every record's extension word
        /// (the table is empty afterwards).
        Flush = 6,
        /// Write next-hop entry `arg` from the payload (a [`crate::formats::NextHopEntry`]; for a
        /// `Tunnel` entry, its [`crate::formats::NextHopTunnel`] follows at bytes 16..48).
        NextHopSet = 7,
        /// Write one index slot (bucket slot or stash entry) `slot_orig` from the payload. Used for
        /// cuckoo moves on a device without `IndexMove`: the new slot is written before the old
        /// one is cleared.
        IndexWrite = 8,
        /// Copy the record at `record` (live or not) to host memory at `dma_addr`; since 1.4 the
        /// completion carries the record's `ts_delta` (its extension word is not in the copy).
        Read = 9,
        /// Do nothing but complete: a fence and a liveness probe.
        Nop = 10,
        /// Allocate counter set `arg` (since 1.2): zero its counters and let records name it.
        /// Set 0 (none) cannot be allocated.
        CounterSetAlloc = 11,
        /// Free counter set `arg` (since 1.2). Refused (`CounterSetInUse`) while a live record
        /// names it: the NIC keeps a count of the records naming each set.
        CounterSetFree = 12,
        /// Write the first `arg` sets of the counter bank (0: all `NEXT_HOP.COUNTER_SETS`) to host
        /// memory at `dma_addr`, in one DMA write, free sets as zeros (since 1.2). The host reads
        /// per-server figures this way, once per interval, whatever the number of flows.
        CounterBankRead = 13,
        /// Move the index slot `slot_orig` to `slot_reply` in one step (since 1.5, capability
        /// `INDEX_MOVE`): `slot_reply` gets `slot_orig`'s word and `slot_orig` is cleared, with
        /// no lookup in between seeing the entry in both or in neither. The source must be live
        /// (`SlotNotLive` otherwise) and point at `record` (`SlotMismatch`), which the NIC may
        /// so fetch while the slot is still on its way; the destination must be empty
        /// (`SlotLive`) and in one of the two buckets or the stash of the entry's tuple
        /// (`BadPlacement`). One command where a cuckoo move took two `IndexWrite`s, and no
        /// payload to fetch.
        IndexMove = 14,
    }
}

hw_enum! {
    /// The outcome of a flow command, in its completion. Anything but `Ok` leaves the table as it
    /// was before the command.
    pub enum Status: u8 {
        /// Done.
        Ok = 0,
        /// The opcode is not one of [`Opcode`].
        BadOpcode = 1,
        /// The command's phase bit is not the one expected for this lap of the ring: the host
        /// wrote the producer index past entries it had not written.
        BadPhase = 2,
        /// The record index is not below the table's record count.
        RecordOutOfRange = 3,
        /// Insert on a record that is live.
        RecordLive = 4,
        /// Delete, modify, query or touch on a record that is not live.
        RecordNotLive = 5,
        /// The record is malformed: valid bit clear, reserved bits set, a protocol other than
        /// TCP or UDP, an IPv4 record with non-zero upper address bytes, both tuples equal, or
        /// (since 1.2) a counter set that is not allocated.
        MalformedRecord = 6,
        /// A slot position names a bucket, slot or stash entry outside the geometry.
        SlotOutOfRange = 7,
        /// Insert, index write or (since 1.5) index move onto a slot that is live.
        SlotLive = 8,
        /// Delete or (since 1.5) IndexMove names a slot that does not point at the record.
        SlotMismatch = 9,
        /// The slot is not in one of the two buckets the tuple hashes to, or its signature is not
        /// the tuple's.
        BadPlacement = 10,
        /// A next-hop index (in a record, or the entry of NextHopSet) is not below the next-hop
        /// table's size.
        NextHopOutOfRange = 11,
        /// An argument (flag, mask, flush scope) has bits this version does not define, or (since
        /// 1.4) an Insert or Modify carries a non-zero `ts_delta` to a device without
        /// `TS_ADJUST`.
        BadArgument = 12,
        /// A DMA read or write for the command failed.
        DmaError = 13,
        /// CounterSetAlloc, CounterSetFree or CounterBankRead names a set that is 0 or not below
        /// `NEXT_HOP.COUNTER_SETS` (since 1.2).
        CounterSetOutOfRange = 14,
        /// CounterSetAlloc on a set that is allocated (since 1.2).
        CounterSetLive = 15,
        /// CounterSetFree on a set that is not allocated (since 1.2).
        CounterSetNotLive = 16,
        /// CounterSetFree on a set that live records still name (since 1.2).
        CounterSetInUse = 17,
        /// IndexMove from a slot that holds no entry (since 1.5).
        SlotNotLive = 18,
    }
}

hw_enum! {
    /// Why the NIC sent a packet to the host instead of forwarding it.
    pub enum PuntReason: u8 {
        /// No flow record matched (a new connection, a handshake in progress).
        Miss = 1,
        /// TCP SYN on a matched flow.
        TcpSyn = 2,
        /// TCP FIN on a matched flow; the record is marked for teardown and an event is sent.
        TcpFin = 3,
        /// TCP RST on a matched flow; the record is marked for teardown and an event is sent.
        TcpRst = 4,
        /// An IPv4 fragment (MF set or offset non-zero) or an IPv6 fragment header.
        Fragment = 5,
        /// IPv4 header with options (IHL > 5).
        IpOptions = 6,
        /// TTL or hop limit of 1 or less on a matched flow.
        TtlExpired = 7,
        /// The rewritten packet would exceed the egress port's MTU (for a `Tunnel` next hop: the
        /// packet with its outer header).
        OverMtu = 8,
        /// ARP.
        Arp = 9,
        /// ICMP or ICMPv6 (echo, errors, neighbour discovery).
        Icmp = 10,
        /// IPv6 with an extension header other than a fragment header.
        Ipv6Ext = 11,
        /// IP with a transport protocol other than TCP, UDP, ICMP or ICMPv6.
        OtherL4 = 12,
        /// An Ethernet type other than IPv4, IPv6 or ARP (LLDP, stacked VLANs...).
        OtherL2 = 13,
        /// A matched flow whose next hop is not valid.
        NoNextHop = 14,
    }
}

hw_enum! {
    /// Why the NIC dropped a packet. Every drop increments the counter of its reason.
    pub enum DropReason: u8 {
        /// The frame ends before the headers it announces (runt, short IP or L4 header).
        Truncated = 1,
        /// A malformed IP header: wrong version, IHL below 5, total length below the header or
        /// beyond the frame, IPv6 payload length beyond the frame.
        BadL3Header = 2,
        /// A malformed TCP header: data offset below 5 or beyond the packet.
        BadL4Header = 3,
        /// The exception ring chosen for a punt was full.
        ExceptionRingFull = 4,
        /// A punted packet longer than the exception ring's buffers.
        ExceptionTooBig = 5,
        /// The egress port is disabled or its link is down.
        PortDown = 6,
        /// An inject descriptor was invalid (length 0 or over the maximum, unknown port).
        BadInject = 7,
        /// The punt was steered to an exception ring that is not enabled.
        QueueDisabled = 8,
        /// The datapath is disabled (control `ENABLE` clear).
        Disabled = 9,
        /// A DMA write of a punted packet (or a DMA read of an injected one) failed.
        DmaError = 10,
        /// A punt whose reason already holds its share of the exception ring
        /// (`PUNT.REASON_SHARE`): a flood of one reason cannot take the ring from the others.
        PuntShare = 11,
    }
}

hw_enum! {
    /// The kind of an event on the event ring.
    pub enum EventKind: u8 {
        /// A flow record's report: idle, torn down, deleted; with its final counters.
        FlowInfo = 1,
        /// A port's link went up or down.
        Link = 2,
        /// The device detected an error (see [`ErrorCode`]).
        Error = 3,
        /// The flash controller booted, fell back, or finished an operation.
        Flash = 4,
    }
}

hw_enum! {
    /// Why a flow-info event was sent.
    pub enum FlowCause: u8 {
        /// The record's last-seen time is older than its idle timeout.
        Idle = 1,
        /// A TCP FIN hit the record.
        Fin = 2,
        /// A TCP RST hit the record.
        Rst = 3,
        /// The NIC removed the record itself (idle with the auto-delete flag set).
        Evicted = 4,
        /// The host deleted the record with the `REPORT` flag.
        Host = 5,
        /// The record was found corrupt and cleared.
        Error = 6,
    }
}

hw_enum! {
    /// The error an error event reports.
    pub enum ErrorCode: u8 {
        /// A DMA read from host memory failed (bad IOVA, unmapped).
        DmaRead = 1,
        /// A DMA write to host memory failed.
        DmaWrite = 2,
        /// Events were lost because the event ring was full; `data` holds how many.
        EventOverflow = 3,
        /// A ring was enabled with an invalid size or base.
        BadRingConfig = 4,
    }
}

hw_enum! {
    /// What a ring carries. Ring ids are fixed: see [`crate::regs::rings`].
    pub enum RingKind: u8 {
        /// Host → NIC flow commands.
        Command = 1,
        /// NIC → host command completions.
        Completion = 2,
        /// Host → NIC packets to send on a port.
        Inject = 3,
        /// NIC → host events.
        Event = 4,
        /// NIC → host punted packets, one ring per slow-path worker.
        Exception = 5,
    }
}

hw_enum! {
    /// The index hash function.
    pub enum HashId: u8 {
        /// CRC-32C (Castagnoli), seeded: see [`crate::hash`].
        Crc32c = 1,
    }
}

hw_enum! {
    /// Transport protocols a flow record may hold.
    pub enum FlowProto: u8 {
        /// TCP.
        Tcp = 6,
        /// UDP.
        Udp = 17,
    }
}

hw_enum! {
    /// Operations of the flash controller (register `FLASH.CMD`).
    pub enum FlashOp: u8 {
        /// Erase the whole slot `SLOT` (all bytes become 0xFF). Refused on the booted slot. On the
        /// active slot (activated, not yet booted) the booted slot is made active again first.
        Erase = 1,
        /// Copy `LENGTH` bytes from host memory at `DMA_ADDR` into slot `SLOT` at `OFFSET`.
        /// The range must be erased. Refused on the booted slot; like Erase on the active one.
        Program = 2,
        /// Copy `LENGTH` bytes of slot `SLOT` at `OFFSET` to host memory at `DMA_ADDR`.
        Read = 3,
        /// Check the image in slot `SLOT` (header, CRC32, SHA-256) and report in `STATUS`.
        Verify = 4,
        /// Make slot `SLOT` the one booted at the next reset (it must verify). Activating the
        /// booted slot cancels a pending activation; activating the other slot makes its next boot
        /// a trial that must be confirmed.
        Activate = 5,
    }
}

hw_enum! {
    /// The result of the last flash operation (register `FLASH.STATUS`, field `RESULT`).
    pub enum FlashResult: u8 {
        /// Done.
        Ok = 0,
        /// The slot number is not below `SLOT_COUNT`.
        BadSlot = 1,
        /// Offset and length reach beyond the slot.
        BadRange = 2,
        /// Program onto bytes that are not erased.
        NotErased = 3,
        /// The image failed its check; `DETAIL` says which part.
        BadImage = 4,
        /// A DMA transfer failed.
        DmaError = 5,
        /// The operation code is unknown.
        BadOp = 6,
        /// Erase or Program on the slot the running image was booted from.
        SlotInUse = 7,
        /// The flash medium failed to erase or program (worn out, or the model's file).
        MediaError = 8,
    }
}

hw_enum! {
    /// The checks an image goes through (`FLASH.STATUS.DETAIL` after `BadImage`,
    /// `FLASH.BOOT_STATUS.FAILED_CHECK`, and the host tools' refusals). The NIC makes the ones
    /// in `NIC_BOOT_CHECKS`, the host the ones in `HOST_CHECKS`, in that order.
    pub enum ImageCheck: u8 {
        /// The header is well formed: magic `SLUICEFW`, format version 1, header size 256, a known
        /// target, reserved bytes zero.
        Header = 1,
        /// The image holds the whole payload: header and `payload_len` bytes are all there (in a
        /// slot: they fit in it).
        Truncated = 2,
        /// The payload's CRC-32 is `payload_crc32`.
        Crc32 = 3,
        /// The SHA-256 of header bytes `0x00..0x80` and the payload is `sha256`.
        Sha256 = 4,
        /// Host only: the image is signed, by a trusted key, and the signature verifies.
        Signature = 5,
        /// Host only: the image implements the driver's major specification version.
        SpecVersion = 6,
        /// Host only: the declared geometry is valid (powers of two, ranges).
        Geometry = 7,
        /// Host only: the image fits in the device's slot.
        Size = 8,
        /// NIC only: the payload loads (for the model: a valid model configuration that agrees
        /// with the header's build id and geometry).
        Payload = 9,
    }
}

hw_enum! {
    /// What an image's payload is for (image header field `target`).
    pub enum ImageTarget: u8 {
        /// An FPGA bitstream, for the card.
        Fpga = 1,
        /// A model configuration (TOML), for the software NIC.
        Model = 2,
    }
}

hw_enum! {
    /// What a flash event reports (event field `cause` when `kind` is Flash).
    pub enum FlashEvent: u8 {
        /// The device booted the active slot; `data` is the slot.
        Booted = 1,
        /// The active slot failed its check or its boot was not confirmed in time; the device
        /// booted the other slot, `data` (`0xFFFF_FFFF`: the factory image).
        FellBack = 2,
        /// A flash operation finished; the result is in `FLASH.STATUS`.
        OpDone = 3,
    }
}

hw_enum! {
    /// What the NIC does to a packet that hits a record, chosen by the next-hop entry the
    /// record's direction names (`NextHopCtl.action`, since 1.3). The forwarding modes of LVS map
    /// onto it: FullNAT and NAT are `Rewrite` (NAT is FullNAT whose other tuple keeps the client's
    /// address: the host installs the server → client tuple as the reply tuple, so the same
    /// rewrite changes only the destination of client packets and only the source of replies),
    /// DR is `Route`, TUN is `Tunnel`.
    pub enum NextHopAction: u8 {
        /// Rewrite addresses and ports to the other tuple reversed, decrement the TTL, fix the
        /// checksums by the direction's deltas (FullNAT, NAT). The value of every entry before 1.3.
        Rewrite = 0,
        /// Leave the IP packet as it arrived, TTL included; only the L2 header changes (DR: the
        /// destination MAC is the real server's, which holds the VIP itself).
        Route = 1,
        /// Leave the IP packet as it arrived and prefix an outer header of the same family
        /// (IPv4-in-IPv4, protocol 4; IPv6-in-IPv6, next header 41) from `src` to `dst` of the
        /// entry's [`crate::formats::NextHopTunnel`] (TUN). Needs capability `TUNNEL`.
        Tunnel = 2,
    }
}

/// All codes, for the document.
pub const ALL_CODES: &[crate::meta::EnumSpec] = &[
    BlockType::SPEC,
    Opcode::SPEC,
    Status::SPEC,
    PuntReason::SPEC,
    DropReason::SPEC,
    EventKind::SPEC,
    FlowCause::SPEC,
    ErrorCode::SPEC,
    RingKind::SPEC,
    HashId::SPEC,
    FlowProto::SPEC,
    FlashOp::SPEC,
    FlashResult::SPEC,
    FlashEvent::SPEC,
    ImageCheck::SPEC,
    ImageTarget::SPEC,
    NextHopAction::SPEC,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code round-trips through its number, and every number that is not a code is refused.
    macro_rules! check_code {
        ($t:ty, $repr:ty, $range:expr) => {{
            for v in <$t>::ALL {
                let n: $repr = (*v).into();
                assert_eq!(<$t>::try_from(n), Ok(*v));
            }
            let mut refused = 0u64;
            for n in $range {
                let n = n as $repr;
                match <$t>::try_from(n) {
                    Ok(v) => assert!(<$t>::ALL.contains(&v)),
                    Err(e) => {
                        assert_eq!(e.value, n as u64);
                        assert_eq!(e.code, stringify!($t));
                        refused += 1;
                    }
                }
            }
            assert!(refused > 0, "some value must be unknown");
            let values: std::collections::HashSet<u64> = <$t>::SPEC.values.iter().map(|c| c.value).collect();
            assert_eq!(values.len(), <$t>::ALL.len(), "values are unique");
        }};
    }

    #[test]
    fn every_code_round_trips_and_refuses_unknown_values() {
        check_code!(Opcode, u8, 0..=255u32);
        check_code!(Status, u8, 0..=255u32);
        check_code!(PuntReason, u8, 0..=255u32);
        check_code!(DropReason, u8, 0..=255u32);
        check_code!(EventKind, u8, 0..=255u32);
        check_code!(FlowCause, u8, 0..=255u32);
        check_code!(ErrorCode, u8, 0..=255u32);
        check_code!(RingKind, u8, 0..=255u32);
        check_code!(HashId, u8, 0..=255u32);
        check_code!(FlowProto, u8, 0..=255u32);
        check_code!(FlashOp, u8, 0..=255u32);
        check_code!(FlashResult, u8, 0..=255u32);
        check_code!(FlashEvent, u8, 0..=255u32);
        check_code!(ImageCheck, u8, 0..=255u32);
        check_code!(ImageTarget, u8, 0..=255u32);
        check_code!(NextHopAction, u8, 0..=255u32);
        check_code!(BlockType, u32, (0x534C_0000u32..0x534C_0020).chain([0, u32::MAX]));
    }

    #[test]
    fn zero_is_never_an_opcode_or_reason() {
        // Zeroed memory must never look like a command, a punt or an event.
        assert!(Opcode::try_from(0).is_err());
        assert!(PuntReason::try_from(0).is_err());
        assert!(DropReason::try_from(0).is_err());
        assert!(EventKind::try_from(0).is_err());
        assert!(FlowCause::try_from(0).is_err());
    }

    #[test]
    fn unknown_code_error_names_code_and_value() {
        let e = Opcode::try_from(0x77).unwrap_err();
        assert_eq!(e.to_string(), "unknown Opcode value 0x77");
    }
}
