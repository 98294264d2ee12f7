//! Register blocks of the device as a whole: identity, control/status, global counters,
//! Ethernet ports and the flash controller.

use crate::meta::reg_block;

reg_block! {
    /// Identity: always at BAR0 offset 0, so a driver can tell what it is talking to before it
    /// trusts anything else. It starts the block chain.
    pub mod identity: Identity, version (1, 0), at 0x0000, size 0x100, next 0x0100 {
        /// Constant `0x534C_4345`; anything else means this is not a Sluice NIC.
        MAGIC @ 0x0C: 32 RO = 0x534C4345,
        /// The version of this specification the device implements (the running image's
        /// `spec_version`). A driver refuses a device whose major differs from its own.
        SPEC_VERSION @ 0x10: 32 RO = 0x00010005 {
            /// Minor version: additions that old drivers may ignore.
            MINOR [15:0],
            /// Major version: incompatible changes.
            MAJOR [31:16],
        },
        /// Build identifier of the running image (its header's `build_id`).
        BUILD_ID @ 0x14: 32 RO = 0,
        /// What this device offers beyond the mandatory core (the running image's `caps`).
        CAPS @ 0x18: 64 RO = 0x3ff {
            /// IPv6 flows and parsing.
            IPV6 [0:0],
            /// 802.1Q tags parsed on receive and inserted from next-hop entries on send.
            VLAN [1:1],
            /// The `seq_adjust` record flag (SYN-proxied flows).
            SEQ_ADJUST [2:2],
            /// The `auto_delete` record flag.
            AUTO_DELETE [3:3],
            /// MSI-X interrupts (otherwise the host must poll).
            MSIX [4:4],
            /// The flash controller block.
            FLASH [5:5],
            /// FIN/RST on a hit may be forwarded by the NIC (`PUNT.HIT_ACTION`).
            TEARDOWN_FORWARD [6:6],
            /// Next-hop entries with the `Tunnel` action (IP-in-IP encapsulation, since 1.3).
            TUNNEL [7:7],
            /// TCP timestamp translation of `seq_adjust` records: a record's `ts_delta` in the
            /// record extension memory (`RecordExt`, since 1.4).
            TS_ADJUST [8:8],
            /// The `IndexMove` command (since 1.5): a cuckoo move in one command.
            INDEX_MOVE [9:9],
        },
        /// Build time of the running image, seconds since the Unix epoch (its header's
        /// `build_time`).
        BUILD_TIME @ 0x20: 64 RO = 0,
        /// BAR0 offset of the doorbell region.
        DOORBELL_BASE @ 0x28: 32 RO = 0x10000,
        /// Bytes between two rings' doorbells (each on its own page).
        DOORBELL_STRIDE @ 0x2C: 32 RO = 0x1000,
    }
}

reg_block! {
    /// Control and status: reset, enable, error status, scratch and the device clock.
    pub mod control: Control, version (1, 0), at 0x0100, size 0x100, next 0x0200 {
        /// Device control.
        CTRL @ 0x10: 32 RW = 0 {
            /// Datapath enable. While clear, received packets are dropped (reason `Disabled`);
            /// commands and injects are still processed.
            ENABLE [0:0],
            /// Write 1 to reset the device: every register returns to its reset value, every ring
            /// is disabled, the flow and next-hop tables are cleared. When `FLASH.ACTIVE` differs
            /// from `FLASH.BOOTED` the reset also boots the active slot. Reads as 0.
            RESET [1:1],
        },
        /// Device status.
        STATUS @ 0x14: 32 RO = 1 {
            /// The device is out of reset and accepts register writes.
            READY [0:0],
            /// The datapath is running.
            ENABLED [1:1],
        },
        /// Latched errors; write 1 to clear a bit. A DMA fault (the first while its bit is clear)
        /// and a refused ring configuration also send an error event.
        ERROR @ 0x18: 32 W1C = 0 {
            /// A DMA read failed.
            DMA_READ [0:0],
            /// A DMA write failed.
            DMA_WRITE [1:1],
            /// A ring was enabled with an invalid base or size; it stayed disabled.
            BAD_RING_CONFIG [2:2],
            /// Events were lost to a full event ring.
            EVENT_OVERFLOW [3:3],
            /// A command arrived with the wrong phase bit.
            COMMAND_PHASE [4:4],
        },
        /// Free for software; the driver's first read/write test.
        SCRATCH @ 0x1C: 32 RW = 0,
        /// The device clock in nanoseconds. Exception and event timestamps use it.
        TIMESTAMP @ 0x20: 64 RO = 0,
        /// Number of resets since power-on, so a driver can tell that somebody else reset the
        /// device.
        RESET_COUNT @ 0x28: 32 RO = 0,
    }
}

reg_block! {
    /// Global datapath counters. All are 64-bit, free-running and never cleared except by reset;
    /// software computes rates from differences.
    pub mod counters: Counters, version (1, 0), at 0x0200, size 0x200, next 0x0400 {
        /// Frames received on all ports.
        RX_PACKETS @ 0x10: 64 RO = 0,
        /// Bytes received on all ports.
        RX_BYTES @ 0x18: 64 RO = 0,
        /// Frames sent by the datapath on a hit.
        TX_PACKETS @ 0x20: 64 RO = 0,
        /// Bytes sent by the datapath on a hit.
        TX_BYTES @ 0x28: 64 RO = 0,
        /// Lookups that matched a record.
        HITS @ 0x30: 64 RO = 0,
        /// Lookups that matched nothing.
        MISSES @ 0x38: 64 RO = 0,
        /// Frames punted to the host (written to an exception ring).
        PUNTS @ 0x40: 64 RO = 0,
        /// Frames dropped, for any reason.
        DROPS @ 0x48: 64 RO = 0,
        /// Frames sent from the inject ring.
        INJECTED @ 0x50: 64 RO = 0,
        /// Events written to the event ring.
        EVENTS @ 0x58: 64 RO = 0,
        /// Events lost to a full event ring.
        EVENTS_LOST @ 0x60: 64 RO = 0,
        /// Punts by reason: entry `n` counts `PuntReason` `n` (entry 0 is unused).
        PUNT_REASON @ 0x80 [16 x 8]: 64 RO = 0,
        /// Drops by reason: entry `n` counts `DropReason` `n` (entry 0 is unused).
        DROP_REASON @ 0x100 [16 x 8]: 64 RO = 0,
    }
}

reg_block! {
    /// Ethernet ports. Port `n`'s registers are at `PORT_* + n × 0x40`.
    pub mod ports: Ports, version (1, 0), at 0x1000, size 0x400, next 0x2000 {
        /// Number of ports (at most 8).
        COUNT @ 0x10: 32 RO = 2,
        /// Bytes between two ports' registers.
        STRIDE @ 0x14: 32 RO = 0x40,
        /// MAC address bytes 0..4 (byte 0 in bits 7:0); loaded from the board at reset.
        PORT_MAC_LO @ 0x40 [8 x 0x40]: 32 RW = 0,
        /// MAC address bytes 4..6 in bits 15:0.
        PORT_MAC_HI @ 0x44 [8 x 0x40]: 32 RW = 0,
        /// Port control.
        PORT_CTRL @ 0x48 [8 x 0x40]: 32 RW = 0 {
            /// Receive and send. A disabled port drops what it receives and what is sent to it
            /// (reason `PortDown`).
            ENABLE [0:0],
        },
        /// Port status.
        PORT_STATUS @ 0x4C [8 x 0x40]: 32 RO = 0 {
            /// Link is up.
            LINK [0:0],
            /// Link speed in Mb/s, 0 when unknown.
            SPEED_MBPS [31:16],
        },
        /// IP MTU: the largest IP packet (without L2 header) the port sends. A rewritten packet
        /// over it is punted (reason `OverMtu`).
        PORT_MTU @ 0x50 [8 x 0x40]: 32 RW = 1500,
        /// Frames received.
        PORT_RX_PACKETS @ 0x58 [8 x 0x40]: 64 RO = 0,
        /// Bytes received.
        PORT_RX_BYTES @ 0x60 [8 x 0x40]: 64 RO = 0,
        /// Frames sent (datapath and inject).
        PORT_TX_PACKETS @ 0x68 [8 x 0x40]: 64 RO = 0,
        /// Bytes sent.
        PORT_TX_BYTES @ 0x70 [8 x 0x40]: 64 RO = 0,
        /// Frames dropped at this port (disabled, link down).
        PORT_DROPS @ 0x78 [8 x 0x40]: 64 RO = 0,
    }
}

reg_block! {
    /// The flash controller: two image slots and a state area. Operations move data between a
    /// slot and host memory by DMA; `STATUS` says when they are done and how they went. At every
    /// boot (power-on, and a reset after the active slot changed) the NIC checks the active
    /// slot's image and falls back to the other slot when it fails or when an activated image
    /// was not confirmed: see "Firmware images and the flash".
    pub mod flash: Flash, version (1, 1), at 0x0700, size 0x100, next 0x0800 {
        /// Number of image slots (2).
        SLOT_COUNT @ 0x10: 32 RO = 2,
        /// Bytes per slot.
        SLOT_SIZE @ 0x14: 32 RO = 0x0040_0000,
        /// The slot booted at the next reset.
        ACTIVE @ 0x18: 32 RO = 0,
        /// The slot the running image came from; `0xFFFF_FFFF` when neither slot passed its check
        /// and the factory image in ROM runs.
        BOOTED @ 0x1C: 32 RO = 0,
        /// What happened at boot.
        BOOT_STATUS @ 0x20: 32 RO = 0 {
            /// The active slot failed its check or was not confirmed in time; the other slot
            /// (or the factory image) was booted, and it is the active slot now.
            FELL_BACK [0:0],
            /// The driver confirmed this boot.
            CONFIRMED [1:1],
            /// Slot 0 holds an image that passes its check.
            SLOT0_OK [2:2],
            /// Slot 1 holds an image that passes its check.
            SLOT1_OK [3:3],
            /// Neither slot passed its check: the factory image in ROM runs. A blank flash boots
            /// it without `FELL_BACK`.
            FACTORY [4:4],
            /// `FELL_BACK` because the activated image was not confirmed (watchdog or boot limit),
            /// not because it failed its check.
            UNCONFIRMED [5:5],
            /// This boot is a trial: the image was activated and is not confirmed yet; the
            /// watchdog runs.
            TRIAL [6:6],
            /// With `FELL_BACK` for a failed check: the `ImageCheck` the active slot failed.
            FAILED_CHECK [15:8],
        },
        /// Write `0xC0FF_1A5E` to confirm that the booted image works. A trial boot left
        /// unconfirmed for `CONFIRM_TIMEOUT_MS` falls back to the other slot at once (the NIC
        /// reboots into it); other values are ignored.
        CONFIRM @ 0x24: 32 WO = 0,
        /// Milliseconds a trial boot has to be confirmed, counted from the boot; 0 disables the
        /// watchdog (the boot limit still applies).
        CONFIRM_TIMEOUT_MS @ 0x28: 32 RW = 60000,
        /// Host address of the operation's buffer.
        DMA_ADDR @ 0x30: 64 RW = 0,
        /// Byte offset in the slot.
        OFFSET @ 0x38: 32 RW = 0,
        /// Bytes to move.
        LENGTH @ 0x3C: 32 RW = 0,
        /// Slot the operation acts on.
        SLOT @ 0x40: 32 RW = 0,
        /// Writing starts an operation.
        CMD @ 0x44: 32 WO = 0 {
            /// `FlashOp`.
            OP [7:0],
        },
        /// Operation status.
        STATUS @ 0x48: 32 RO = 0 {
            /// An operation is running; writes to the other registers are ignored.
            BUSY [0:0],
            /// The last operation finished.
            DONE [1:1],
            /// `FlashResult` of the last operation.
            RESULT [15:8],
            /// Result detail: for `BadImage`, the `ImageCheck` that failed.
            DETAIL [31:16],
        },
        /// Build id of the image in the booted slot.
        IMAGE_BUILD_ID @ 0x4C: 32 RO = 0,
        /// Boots of the active image while it is on trial (activated, not confirmed).
        BOOT_TRIES @ 0x50: 32 RO = 0,
        /// Trial boots allowed before the next boot falls back (`FLASH_BOOT_LIMIT`).
        BOOT_LIMIT @ 0x54: 32 RO = 3,
    }
}

/// The value written to `flash::CONFIRM` to confirm a boot.
pub const FLASH_CONFIRM_KEY: u32 = 0xC0FF_1A5E;
