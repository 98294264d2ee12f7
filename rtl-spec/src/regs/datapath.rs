//! Register blocks of the datapath and the host interface: flow table, next-hop table, ager,
//! punt control, interrupts and rings.

use crate::meta::reg_block;

reg_block! {
    /// The flow table: its geometry (fixed by the image), the index hash and its seeds, and
    /// occupancy and command counters. The table itself is reached only through flow commands.
    pub mod flow_table: FlowTable, version (1, 0), at 0x0400, size 0x100, next 0x0500 {
        /// Number of flow records (a power of two).
        RECORDS @ 0x10: 32 RO = 0x0010_0000,
        /// Number of index buckets (a power of two, at least 2).
        BUCKETS @ 0x14: 32 RO = 0x0008_0000,
        /// Slots per bucket.
        SLOTS_PER_BUCKET @ 0x18: 32 RO = 4,
        /// Entries in the stash, searched on every lookup after both buckets.
        STASH_SIZE @ 0x1C: 32 RO = 64,
        /// Bytes per flow record.
        RECORD_SIZE @ 0x20: 32 RO = 128,
        /// The index hash.
        HASH @ 0x24: 32 RO = 1 {
            /// `HashId` of the function.
            ID [7:0],
        },
        /// Seed of the first bucket choice (and of the signature). Writable only while the table
        /// is empty; other writes are ignored.
        SEED_A @ 0x28: 32 RW = 0x9E3779B9,
        /// Seed of the second bucket choice. Same rule as `SEED_A`.
        SEED_B @ 0x2C: 32 RW = 0x85EBCA6B,
        /// Live records.
        OCCUPANCY @ 0x30: 32 RO = 0,
        /// Live index slots, stash included (two per live record).
        INDEX_USED @ 0x34: 32 RO = 0,
        /// Live stash entries.
        STASH_USED @ 0x38: 32 RO = 0,
        /// Commands executed (any status).
        COMMANDS @ 0x40: 64 RO = 0,
        /// Successful inserts.
        INSERTS @ 0x48: 64 RO = 0,
        /// Successful deletes, plus records removed by the ager or a flush.
        DELETES @ 0x50: 64 RO = 0,
        /// Commands that completed with a status other than `Ok`.
        FAILS @ 0x58: 64 RO = 0,
    }
}

reg_block! {
    /// The next-hop table's geometry, and (version 1.1, spec 1.2) the counter bank's: the two
    /// tables of entries the host allocates and many flows share. Next-hop entries are written
    /// with `NextHopSet` commands; counter sets are allocated and freed with `CounterSetAlloc`
    /// and `CounterSetFree` and read in bulk with `CounterBankRead`.
    pub mod next_hop: NextHop, version (1, 1), at 0x0500, size 0x100, next 0x0600 {
        /// Number of entries.
        ENTRIES @ 0x10: 32 RO = 4096,
        /// Bytes per entry.
        ENTRY_SIZE @ 0x14: 32 RO = 16,
        /// Entries with the valid bit set.
        USED @ 0x18: 32 RO = 0,
        /// Sets in the counter bank, set 0 (none) included.
        COUNTER_SETS @ 0x20: 32 RO = 2048,
        /// Bytes per counter set.
        COUNTER_SET_SIZE @ 0x24: 32 RO = 32,
        /// Allocated counter sets.
        COUNTER_SETS_USED @ 0x28: 32 RO = 0,
        /// `CounterBankRead` commands done.
        BANK_READS @ 0x30: 64 RO = 0,
    }
}

reg_block! {
    /// The ager: sweeps the records, compares each live record's `last_seen` with its
    /// `idle_timeout`, and reports idle ones on the event ring (once per record until it is hit
    /// again or touched).
    pub mod ager: Ager, version (1, 0), at 0x0600, size 0x100, next 0x0700 {
        /// Ager control.
        CTRL @ 0x10: 32 RW = 1 {
            /// Sweep the table.
            ENABLE [0:0],
        },
        /// Length of an ager tick in microseconds; `last_seen` counts these ticks.
        TICK_US @ 0x14: 32 RW = 1000,
        /// Milliseconds one sweep over all records takes.
        SCAN_PERIOD_MS @ 0x18: 32 RW = 1000,
        /// The current time in ticks (what a hit writes to `last_seen`).
        NOW_TICKS @ 0x1C: 32 RO = 0,
        /// Completed sweeps.
        SCANS @ 0x20: 64 RO = 0,
        /// Idle reports sent.
        AGED @ 0x28: 64 RO = 0,
        /// Records the ager deleted itself (`auto_delete`).
        EVICTED @ 0x30: 64 RO = 0,
    }
}

reg_block! {
    /// Punt control: which exception ring each punted packet goes to. In order: a reason with a
    /// fixed queue in `REASON_QUEUE` goes there; a packet to an address in the LIP filter goes to
    /// `dst_port & LPORT_MASK` (its worker owns that port slice); any other packet goes to
    /// `RETA[steering hash & 63]`, which keeps both directions of a client flow together.
    pub mod punt: Punt, version (1, 1), at 0x0800, size 0x400, next 0x0C00 {
        /// Number of exception rings used for steering (1..16).
        QUEUES @ 0x10: 32 RW = 1,
        /// Mask applied to the destination port of a packet to a LIP.
        LPORT_MASK @ 0x14: 32 RW = 0,
        /// Seed of the steering hash.
        STEER_SEED @ 0x18: 32 RW = 0x5F3759DF,
        /// What the NIC does with a FIN or RST that hits a record (capability `TEARDOWN_FORWARD`).
        HIT_ACTION @ 0x1C: 32 RW = 0 {
            /// 0: punt a FIN (reason `TcpFin`); 1: forward it and only send the event.
            FIN_FORWARD [0:0],
            /// 0: punt an RST (reason `TcpRst`); 1: forward it and only send the event.
            RST_FORWARD [1:1],
        },
        /// Entry `n`: the queue for `PuntReason` `n`, or `0xFF` to steer by LIP filter and hash.
        REASON_QUEUE @ 0x20 [16 x 4]: 32 RW = 0xFF,
        /// Redirection table: entry `n` is the queue for steering hashes with `hash & 63 == n`.
        RETA @ 0x60 [64 x 4]: 32 RW = 0,
        /// Entry `n`: the percentage (1..100) of an exception ring's entries that punts of
        /// `PuntReason` `n` may hold at once; a punt beyond it is dropped (`PuntShare`), so a flood
        /// of one reason leaves room for the others. 100 (and 0, or anything above): no bound.
        REASON_SHARE @ 0x160 [16 x 4]: 32 RW = 100,
        /// LIP filter entry `n`, address bytes 0..4 (byte 0 in bits 7:0; IPv4 uses this word only).
        LIP_ADDR0 @ 0x200 [16 x 0x20]: 32 RW = 0,
        /// LIP filter entry `n`, address bytes 4..8.
        LIP_ADDR1 @ 0x204 [16 x 0x20]: 32 RW = 0,
        /// LIP filter entry `n`, address bytes 8..12.
        LIP_ADDR2 @ 0x208 [16 x 0x20]: 32 RW = 0,
        /// LIP filter entry `n`, address bytes 12..16.
        LIP_ADDR3 @ 0x20C [16 x 0x20]: 32 RW = 0,
        /// LIP filter entry `n` control.
        LIP_CTL @ 0x210 [16 x 0x20]: 32 RW = 0 {
            /// The entry is used.
            VALID [0:0],
            /// The address is IPv6.
            IPV6 [1:1],
        },
    }
}

reg_block! {
    /// Interrupts: each interrupt source (one per ring, numbered as the rings) is mapped to an
    /// MSI-X vector. A vector fires once when it is armed and a source mapped to it has new
    /// entries, after `COAL_COUNT` entries or `COAL_USEC` microseconds, whichever comes first
    /// (0 and 0: at once); firing disarms it, and the host re-arms after draining.
    pub mod interrupts: Interrupts, version (1, 0), at 0x0C00, size 0x400, next 0x1000 {
        /// Number of MSI-X vectors.
        VECTORS @ 0x10: 32 RO = 32,
        /// Number of interrupt sources (= rings).
        SOURCES @ 0x14: 32 RO = 20,
        /// Entry `s`: the vector of source `s`.
        SOURCE_VECTOR @ 0x100 [64 x 4]: 32 RW = 0 {
            /// Vector number.
            VECTOR [7:0],
            /// The source raises interrupts (otherwise it is polled).
            ENABLE [31:31],
        },
        /// Vector `v` control.
        VEC_CTRL @ 0x200 [32 x 0x10]: 32 RW = 0 {
            /// Armed: write 1 to arm; cleared by the device when the vector fires.
            ARMED [0:0],
        },
        /// Vector `v`: fire after this many microseconds at most.
        VEC_COAL_USEC @ 0x204 [32 x 0x10]: 32 RW = 0,
        /// Vector `v`: fire after this many new entries at most.
        VEC_COAL_COUNT @ 0x208 [32 x 0x10]: 32 RW = 0,
        /// Vector `v`: times fired.
        VEC_FIRED @ 0x20C [32 x 0x10]: 32 RO = 0,
    }
}

reg_block! {
    /// DMA rings. Ring `r`'s registers are at `RING_* + r × 0x40`. Ring ids are fixed: 0 command,
    /// 1 completion, 2 inject, 3 event, 4 + n exception ring n. Indices are free-running 32-bit
    /// counters. The host moves its index by writing the doorbell (`DOORBELL`, on a page of its
    /// own): the new producer index for the command and inject rings, the new consumer index
    /// for the others. To enable a ring, write `BASE`, `SIZE_LOG2` (and `BUF_*`), then `ENABLE`;
    /// enabling resets both indices to 0.
    pub mod rings: Rings, version (1, 0), at 0x2000, size 0x1000, next 0x0000 {
        /// Number of rings.
        COUNT @ 0x10: 32 RO = 20,
        /// Bytes between two rings' registers.
        STRIDE @ 0x14: 32 RO = 0x40,
        /// Number of exception rings.
        EXCEPTION_RINGS @ 0x18: 32 RO = 16,
        /// Largest `SIZE_LOG2` accepted.
        MAX_SIZE_LOG2 @ 0x1C: 32 RO = 16,
        /// Host address of entry 0; aligned to 64 bytes.
        RING_BASE @ 0x40 [20 x 0x40]: 64 RW = 0,
        /// Entries = 2^SIZE_LOG2 (1..=MAX_SIZE_LOG2).
        RING_SIZE_LOG2 @ 0x48 [20 x 0x40]: 32 RW = 0,
        /// Bytes per entry (256 command, 64 completion, 32 inject, 64 event, 32 exception).
        RING_ENTRY_SIZE @ 0x4C [20 x 0x40]: 32 RO = 256,
        /// Ring control.
        RING_CTRL @ 0x50 [20 x 0x40]: 32 RW = 0 {
            /// The ring is in use.
            ENABLE [0:0],
        },
        /// Ring status.
        RING_STATUS @ 0x54 [20 x 0x40]: 32 RO = 0 {
            /// The ring is enabled.
            ENABLED [0:0],
            /// A NIC-produced ring is full (the device is waiting for, or dropping on, it).
            FULL [1:1],
            /// The last enable was refused (bad base, size or buffer); see `CONTROL.ERROR`.
            CONFIG_ERROR [2:2],
        },
        /// Producer index.
        RING_PROD @ 0x58 [20 x 0x40]: 32 RO = 0,
        /// Consumer index.
        RING_CONS @ 0x5C [20 x 0x40]: 32 RO = 0,
        /// Exception rings: host address of the packet buffer of entry 0; entry `i`'s buffer is
        /// at `BUF_BASE + i × BUF_SIZE`.
        RING_BUF_BASE @ 0x60 [20 x 0x40]: 64 RW = 0,
        /// Exception rings: bytes per packet buffer (256..=16384, multiple of 64).
        RING_BUF_SIZE @ 0x68 [20 x 0x40]: 32 RW = 2048,
        /// `RingKind` of the ring.
        RING_KIND @ 0x6C [20 x 0x40]: 32 RO = 1,
        /// BAR0 offset of the ring's doorbell.
        RING_DOORBELL @ 0x70 [20 x 0x40]: 32 RO = 0x10000,
        /// Entries (packets, events) lost because the ring was full or disabled.
        RING_DROPS @ 0x74 [20 x 0x40]: 32 RO = 0,
    }
}
