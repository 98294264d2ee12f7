//! The table's vocabulary: the flow to offload, its tuples' hashes and its handle, and what the
//! table reports back (why an install failed, its counts, a flow's counters, the NIC's events,
//! the commands it refused). Re-exported by [`crate::table`].

use host_driver::DriverError;
use rtl_spec::codes::{ErrorCode, FlowCause, Status};
use rtl_spec::formats::{FlowTuple, LookupKey};
use rtl_spec::hash::{KeyHash, Seeds};

/// A connection to offload: both directions as the NIC sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Client → VIP.
    pub orig: FlowTuple,
    /// Real server → LIP.
    pub reply: FlowTuple,
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// IPv6 tuples.
    pub ipv6: bool,
    /// Next hop toward the real server.
    pub next_hop_orig: u16,
    /// Next hop back toward the client.
    pub next_hop_reply: u16,
    /// Idle timeout the NIC's ager applies, seconds (0: never).
    pub idle_timeout: u16,
    /// The slow path's handle for the connection, echoed in events.
    pub cookie: u32,
    /// Opaque to the NIC: the slow path's own state for the flow, kept in the record so that a
    /// restarted daemon can adopt the flow ([`crate::FlowTable::adopt`]).
    pub host_state: u8,
    /// The counter set the NIC adds the flow's packets and bytes to, besides the record's own
    /// counters (0: none). Allocated with [`crate::FlowTable::alloc_counter_set`]; one per real server
    /// of each service, so the bank holds per-server figures.
    pub counter_set: u16,
    /// A SYN-proxied flow's sequence translation (record flag `seq_adjust`, field
    /// `seq_delta`): added to the sequence number of reply packets, subtracted from the
    /// acknowledgement and SACK blocks of original ones. `None` for every other flow.
    pub seq_delta: Option<u32>,
    /// A SYN-proxied flow's TCP timestamp translation (spec 1.4, the record's `ts_delta` in the
    /// NIC's record extension memory): `Tp − Ts`, the proxy's TSval minus the server's, added
    /// to TSval of reply packets and subtracted from TSecr of original ones. Meaningful only
    /// with `seq_delta: Some(_)` (the NIC applies it only to a `seq_adjust` record); 0 means no
    /// timestamp translation, and is what every other flow carries. A non-zero value needs a
    /// device with capability `TS_ADJUST`.
    pub ts_delta: u32,
}

impl Flow {
    /// The lookup key of one direction, as the NIC matches it.
    pub fn key(&self, reply: bool) -> LookupKey {
        LookupKey::new(if reply { self.reply } else { self.orig }, self.proto, self.ipv6)
    }
}

/// The key hashes of a flow's two tuples, computed once and carried to the install.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowHashes {
    /// The original tuple's.
    pub orig: KeyHash,
    /// The reply tuple's.
    pub reply: KeyHash,
}

impl FlowHashes {
    /// Both tuples of `flow` hashed with `seeds` (the table's, [`crate::FlowTable::seeds`]).
    pub fn of(flow: &Flow, seeds: Seeds) -> Self {
        FlowHashes { orig: seeds.key_hash(&flow.key(false)), reply: seeds.key_hash(&flow.key(true)) }
    }
}

/// A flow installed in the NIC: its record index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(pub u32);

/// Why a flow was not installed.
#[derive(Debug)]
pub enum InstallError {
    /// No record or no index slot is free: the connection stays on the host's software path.
    Full,
    /// The flow is not one the NIC can hold (protocol, addresses, next hop).
    Invalid(String),
    /// The device failed.
    Device(DriverError),
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstallError::Full => write!(f, "the NIC flow table is full"),
            InstallError::Invalid(m) => write!(f, "the flow cannot be offloaded: {m}"),
            InstallError::Device(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for InstallError {}

/// What the table counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Flows installed.
    pub installs: u64,
    /// Installs refused because the table was full.
    pub full: u64,
    /// Flows removed.
    pub removes: u64,
    /// Cuckoo moves written.
    pub moves: u64,
    /// Commands the NIC refused (and the shadow rolled back).
    pub command_errors: u64,
    /// Times the device was lost (stopped answering, reset behind the driver's back, its
    /// connection gone) and brought back: reset or reconnected, and rewritten from the shadow.
    /// Only successful recoveries count.
    pub recoveries: u64,
    /// Attempts to bring a lost device back that failed (retried with backoff).
    pub recovery_failures: u64,
    /// Flows adopted from the NIC's table at start ([`crate::FlowTable::adopt`]).
    pub adopted: u64,
}

/// A flow's counters as the NIC keeps them, per direction (original, reply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Packets forwarded.
    pub packets: [u32; 2],
    /// Bytes (IP length) forwarded.
    pub bytes: [u64; 2],
    /// OR of the TCP flags seen.
    pub tcp_flags: [u8; 2],
    /// Milliseconds since the last hit.
    pub idle_ms: u32,
}

/// What the NIC reports about flows, for the slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEvent {
    /// A flow went idle, saw a FIN or RST, was deleted with a report, or was evicted by the
    /// NIC (then it is already gone from the table).
    Flow {
        /// The flow.
        handle: Handle,
        /// The slow path's cookie.
        cookie: u32,
        /// Why the NIC reported it (idle, FIN, RST, host delete, eviction).
        cause: FlowCause,
        /// Its counters at that moment.
        counters: FlowCounters,
    },
    /// The device reported an error (code, detail).
    DeviceError(Option<ErrorCode>, u32),
}

/// A command the NIC refused, as the table reports it once the shadow is rolled back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An install: the flow is not offloaded after all (its record was released), and its
    /// connection belongs on the host's software path.
    Install {
        /// The handle the install had returned (no longer the flow's).
        handle: Handle,
        /// The slow path's cookie of the flow.
        cookie: u32,
        /// Why the NIC refused it.
        status: Status,
    },
    /// Any other command (a remove, a move, a next hop, a touch): nothing for the caller to
    /// undo, reported for the record.
    Command {
        /// The command's opcode (`rtl_spec::codes::Opcode`).
        opcode: u8,
        /// The record it named.
        record: u32,
        /// Why the NIC refused it.
        status: Status,
    },
}
