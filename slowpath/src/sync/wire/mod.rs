//! The connection-sync datagram: a 16-byte header and up to [`MAX_RECORDS`] fixed-size records,
//! all big-endian, read through zerocopy views so a hostile datagram is refused with a reason,
//! never a panic.
//!
//! ```text
//! header (16 bytes)                          record (92 bytes)
//!  0  magic "SLSY"                            0  kind (1 created, 2 changed, 3 ended)
//!  4  version (2)                             1  protocol (6, 17)
//!  5  record size (92)                        2  family (4, 6)
//!  6  record count                            3  state (the NIC record's host_state byte)
//!  8  node id of the sender                   4  flags (bit 0: seq_delta is set)
//! 12  sequence number of the datagram          5  reserved (3 bytes, zero)
//!                                             8  remaining timeout, ms
//!                                            12  seq_delta (SYN-proxied flows)
//!                                            16  client, VIP, LIP, server addresses (16 bytes each)
//!                                            80  their ports (2 bytes each)
//!                                            88  ts_delta (SYN-proxied flows with
//!                                                timestamps; 0: none)
//! ```
//!
//! A record carries the record size in the header so a later version may append fields that an
//! older reader refuses cleanly (a different size is a different version). Version 2 appended
//! `ts_delta`; version 1's datagrams (88-byte records) are still read, as records whose
//! `ts_delta` is 0, so a cluster can be upgraded one node at a time.

use super::{SyncEvent, SyncKind};
use crate::addr::{from_bytes, to_bytes};
use crate::conn::{Endpoints, State};
use crate::service::Proto;
use std::net::SocketAddr;
use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// "SLSY".
pub const MAGIC: u32 = 0x534C_5359;
/// The format this code writes (and the newest it reads).
pub const VERSION: u8 = 2;
/// Version 1's record size (its records are version 2's without `ts_delta`).
const RECORD_LEN_V1: usize = 88;
/// Records per datagram at most: 16 + 15 × 92 = 1396 bytes, inside any path's MTU.
pub const MAX_RECORDS: usize = 15;

/// The datagram header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: U32,
    /// [`VERSION`].
    pub version: u8,
    /// `size_of::<Record>()`.
    pub record_size: u8,
    /// Records that follow.
    pub count: U16,
    /// The sender's node id.
    pub node: U32,
    /// The sender's datagram sequence number (a gap is a lost datagram).
    pub seq: U32,
}

/// One connection event.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Record {
    /// [`SyncKind`] as a byte.
    pub kind: u8,
    /// IP protocol number.
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    /// [`State::to_host_state`].
    pub state: u8,
    /// Bit 0: `seq_delta` is set.
    pub flags: u8,
    /// Zero when written; ignored when read (room for a later version's flags).
    pub reserved: [u8; 3],
    /// The connection's remaining timeout, ms.
    pub timeout_ms: U32,
    /// The SYN proxy's sequence delta.
    pub seq_delta: U32,
    /// Client, VIP, LIP, server (IPv4 in the first four bytes).
    pub addrs: [[u8; 16]; 4],
    /// Their ports.
    pub ports: [U16; 4],
    /// The SYN proxy's timestamp delta (version 2).
    pub ts_delta: U32,
}

/// The size of a header.
pub const HEADER_LEN: usize = size_of::<Header>();
/// The size of a record.
pub const RECORD_LEN: usize = size_of::<Record>();

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadDatagram {
    /// Shorter than a header, or its length is not the header's count of records.
    Length,
    /// Not "SLSY".
    Magic,
    /// Another version or record size.
    Version,
    /// A record with an unknown kind, protocol, family, state or flag.
    Record,
}

impl std::fmt::Display for BadDatagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadDatagram::Length => "length does not match the header's record count",
            BadDatagram::Magic => "not a sync datagram (bad magic)",
            BadDatagram::Version => "another version of the sync format",
            BadDatagram::Record => "a record with an unknown kind, protocol, family or state",
        })
    }
}

/// A datagram as read: who sent it, its sequence number and its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The sender's node id.
    pub node: u32,
    /// Its sequence number.
    pub seq: u32,
    /// The events, in order.
    pub events: Vec<SyncEvent>,
}

impl Record {
    /// The record of an event.
    pub fn of(e: &SyncEvent) -> Record {
        let ep = e.ep;
        Record {
            kind: e.kind as u8,
            proto: e.proto.number(),
            family: if ep.client.is_ipv6() { 6 } else { 4 },
            state: e.state.to_host_state(),
            flags: u8::from(e.seq_delta.is_some()),
            reserved: [0; 3],
            timeout_ms: U32::new(e.timeout_ms),
            seq_delta: U32::new(e.seq_delta.unwrap_or(0)),
            addrs: [
                to_bytes(ep.client.ip()),
                to_bytes(ep.vip.ip()),
                to_bytes(ep.lip.ip()),
                to_bytes(ep.rs.ip()),
            ],
            ports: [ep.client.port(), ep.vip.port(), ep.lip.port(), ep.rs.port()].map(U16::new),
            ts_delta: U32::new(e.ts_delta),
        }
    }

    /// The event of a record, or `None` when a field holds a value no writer writes.
    pub fn event(&self) -> Option<SyncEvent> {
        let kind = SyncKind::from_byte(self.kind)?;
        let proto = Proto::from_number(self.proto)?;
        let v6 = match self.family {
            4 => false,
            6 => true,
            _ => return None,
        };
        let state = State::from_host_state(self.state)?;
        if matches!(state, State::Tcp(_)) != (proto == Proto::Tcp) || self.flags & !1 != 0 {
            return None;
        }
        let at = |i: usize| SocketAddr::new(from_bytes(&self.addrs[i], v6), self.ports[i].get());
        Some(SyncEvent {
            kind,
            ep: Endpoints { client: at(0), vip: at(1), lip: at(2), rs: at(3) },
            proto,
            state,
            timeout_ms: self.timeout_ms.get(),
            seq_delta: (self.flags & 1 != 0).then(|| self.seq_delta.get()),
            ts_delta: self.ts_delta.get(),
        })
    }
}

/// Writes a datagram of `events` (at most [`MAX_RECORDS`]; the rest are not written) into
/// `out`, replacing what it held.
pub fn encode(node: u32, seq: u32, events: &[SyncEvent], out: &mut Vec<u8>) {
    let events = &events[..events.len().min(MAX_RECORDS)];
    out.clear();
    let h = Header {
        magic: U32::new(MAGIC),
        version: VERSION,
        record_size: RECORD_LEN as u8,
        count: U16::new(events.len() as u16),
        node: U32::new(node),
        seq: U32::new(seq),
    };
    out.extend_from_slice(h.as_bytes());
    for e in events {
        out.extend_from_slice(Record::of(e).as_bytes());
    }
}

/// Reads a datagram; a bad one is refused whole.
pub fn decode(bytes: &[u8]) -> Result<Datagram, BadDatagram> {
    let (h, rest) = Header::ref_from_prefix(bytes).map_err(|_| BadDatagram::Length)?;
    if h.magic.get() != MAGIC {
        return Err(BadDatagram::Magic);
    }
    let size = usize::from(h.record_size);
    match (h.version, size) {
        (VERSION, RECORD_LEN) | (1, RECORD_LEN_V1) => {}
        _ => return Err(BadDatagram::Version),
    }
    let count = usize::from(h.count.get());
    if count > MAX_RECORDS || rest.len() != count * size {
        return Err(BadDatagram::Length);
    }
    // A version 1 record is a prefix of a version 2 one: the fields it lacks read as zero.
    let record = |bytes: &[u8]| {
        let mut full = [0u8; RECORD_LEN];
        full[..bytes.len()].copy_from_slice(bytes);
        Record::read_from_bytes(&full).ok().and_then(|r| r.event())
    };
    let events =
        rest.chunks_exact(size).map(record).collect::<Option<Vec<_>>>().ok_or(BadDatagram::Record)?;
    Ok(Datagram { node: h.node.get(), seq: h.seq.get(), events })
}

#[cfg(test)]
mod tests;
