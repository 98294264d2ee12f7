//! PROXY protocol v2 for FullNAT services (`proxy_protocol = "v2"`): the header that tells the
//! real server who the client was, the sequence shift it costs, and how an offloaded flow with
//! that shift is written into the NIC. The worker's part (when the header goes out, its
//! retransmission, when the flow may be offloaded) is in `worker::pp`.
//!
//! FullNAT hides the client from the server: the server sees the LIP. With PROXY protocol v2
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>) the first bytes the server
//! receives on the connection are a binary header naming the client's address and port (source)
//! and the VIP's (destination); nginx (`listen … proxy_protocol`), HAProxy (`accept-proxy`) and
//! most proxies read it before the application's own data.
//!
//! **Layout** (section 2.2 of the text; everything in network byte order):
//!
//! ```text
//!  0                   12    13    14        16
//! +----------------------+-----+-----+---------+--------------------------------------+
//! | \r\n\r\n\0\r\nQUIT\n | 0x21| fam | len     | addresses (len bytes)                |
//! +----------------------+-----+-----+---------+--------------------------------------+
//!   signature (12)        ver=2  0x11 TCP4: src addr(4) dst addr(4) src port dst port = 12
//!                         PROXY  0x21 TCP6: src addr(16) dst addr(16) src port dst port = 36
//! ```
//!
//! so 28 bytes for IPv4 and 52 for IPv6, with no TLVs.
//!
//! **Design.** The header is data the client never sent, so the server's sequence space for the
//! client's bytes is the client's shifted by the header's length `H`:
//!
//! 1. The client's SYN creates the connection (as any FullNAT connection); its ISN `I` is kept.
//! 2. The client's first ACK after the handshake (with or without data) is preceded, toward the
//!    server, by one segment the slow path writes itself: `seq = I + 1`, the header as payload,
//!    the client's acknowledgement, window and options (timestamps, so that PAWS accepts it).
//! 3. From then on every client segment has `H` added to its sequence number, and every server
//!    segment has `H` subtracted from its acknowledgement number and SACK block edges, on the
//!    host path ([`shift`]) and, once offloaded, in the NIC.
//! 4. The flow is offloaded only once the server has acknowledged the header (an ACK at or past
//!    `I + 1 + H`): until then the server's packets come to the host, which sees whether the
//!    header arrived; client data that comes meanwhile is shifted and forwarded by the host path
//!    (the server buffers it if the header was lost). The header is not stored: it is written
//!    again from the connection's endpoints when it must be retransmitted, on a timer (200 ms,
//!    doubling), at most [`MAX_SENDS`] times; a server that never acknowledges it ends the
//!    connection (drop reason `proxy_protocol_unacked`).
//!
//! **In the NIC.** The record's `seq_adjust` adds `seq_delta` to the sequence number of *reply*
//! packets and subtracts it from the acknowledgement and SACK edges of *original* ones: the SYN
//! proxy's direction, the opposite of the one needed here. Rather than a new record bit (the
//! control word has none free), the flow is written **server first** ([`server_first`]): the
//! record's original tuple is the server → LIP one and its reply tuple the client → VIP one. The
//! record is symmetric in everything else (both tuples are indexed; a hit leaves with the other
//! tuple reversed; the next hop and checksum deltas are per direction), so the only effects are
//! that the record's per-direction counters and its counter set count the other way round, and
//! `host_state` carries [`SERVER_FIRST`] so that the host (and a restarted daemon adopting the
//! flow) reads them, and the tuples, back the right way ([`client_first`],
//! [`FlowCounters`] swapped by [`swap_counters`]). Such flows get counter sets of their own.
//!
//! **Limits.** No TLVs (no SSL, unique-id or CRC32C). Not with `synproxy = true` (a record holds
//! one sequence delta); only for TCP and only with FullNAT (the configuration refuses the rest).

use crate::synproxy;
use flow_offload::{Flow, FlowCounters, FlowHashes};
use std::net::{IpAddr, SocketAddr};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The 12-byte signature every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
pub const VERSION_PROXY: u8 = 0x21;
/// Address family INET, transport STREAM.
pub const TCP4: u8 = 0x11;
/// Address family INET6, transport STREAM.
pub const TCP6: u8 = 0x21;
/// Bit of a record's `host_state` that says the record is written server first.
pub const SERVER_FIRST: u8 = 0x80;
/// Times the header is sent at most (the first and the retransmissions).
pub const MAX_SENDS: u8 = 6;
/// The first retransmission timeout, ns (doubled after each).
pub const FIRST_RTO_NS: u64 = 200_000_000;

/// What a service tells its servers about the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// PROXY protocol v2 header at the start of the server-side stream.
    V2,
    /// The client's IPv4 address and port in a TCP option (kind 254) of the segments that
    /// reach the server until it is established ([`crate::toa`]).
    Toa,
}

impl ProxyProtocol {
    /// The configuration's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyProtocol::V2 => "v2",
            ProxyProtocol::Toa => "toa",
        }
    }
}

/// The fixed part of a v2 header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    /// [`SIGNATURE`].
    pub signature: [u8; 12],
    /// [`VERSION_PROXY`].
    pub ver_cmd: u8,
    /// [`TCP4`] or [`TCP6`].
    pub family: u8,
    /// Length of what follows.
    pub len: U16,
}

/// The address block of a TCP4 header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Inet4 {
    /// Client address.
    pub src_addr: [u8; 4],
    /// VIP.
    pub dst_addr: [u8; 4],
    /// Client port.
    pub src_port: U16,
    /// VIP port.
    pub dst_port: U16,
}

/// The address block of a TCP6 header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Inet6 {
    /// Client address.
    pub src_addr: [u8; 16],
    /// VIP.
    pub dst_addr: [u8; 16],
    /// Client port.
    pub src_port: U16,
    /// VIP port.
    pub dst_port: U16,
}

/// Length of the header for a client of this family: 28 (IPv4) or 52 (IPv6).
pub fn header_len(v6: bool) -> u32 {
    let block = if v6 { size_of::<Inet6>() } else { size_of::<Inet4>() };
    (size_of::<Header>() + block) as u32
}

/// The v2 header for a connection from `client` to `vip` (both of one family: a packet's).
/// An IPv4-mapped pair (impossible from a parsed packet) is written as TCP6.
pub fn v2_header(client: SocketAddr, vip: SocketAddr) -> Vec<u8> {
    let (src_port, dst_port) = (U16::new(client.port()), U16::new(vip.port()));
    let mut out = Vec::with_capacity(52);
    match (client.ip(), vip.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let block = Inet4 { src_addr: s.octets(), dst_addr: d.octets(), src_port, dst_port };
            let h = Header {
                signature: SIGNATURE,
                ver_cmd: VERSION_PROXY,
                family: TCP4,
                len: U16::new(size_of::<Inet4>() as u16),
            };
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(block.as_bytes());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            let block = Inet6 { src_addr: v6(s).octets(), dst_addr: v6(d).octets(), src_port, dst_port };
            let h = Header {
                signature: SIGNATURE,
                ver_cmd: VERSION_PROXY,
                family: TCP6,
                len: U16::new(size_of::<Inet6>() as u16),
            };
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(block.as_bytes());
        }
    }
    out
}

/// The segment that carries the header to the server: from the LIP, `seq` the one after the
/// client's ISN, ACK and PSH, the client's `ack`, `window` and `options` (padded to 4 bytes),
/// checksums filled in. An IP packet.
pub fn header_segment(
    lip: SocketAddr,
    rs: SocketAddr,
    (seq, ack, window): (u32, u32, u16),
    options: &[u8],
    header: &[u8],
) -> Vec<u8> {
    const PSH_ACK: u8 = 0x18;
    let mut seg = synproxy::segment(lip.port(), rs.port(), seq, ack, PSH_ACK, window, options);
    seg.extend_from_slice(header);
    crate::emit::ip_packet(lip.ip(), rs.ip(), rtl_spec::wire::IPPROTO_TCP, 64, seg, 16)
}

/// `a` is at or after `b` in sequence space (RFC 9293's modulo 2^32 comparison).
pub fn seq_ge(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < 1 << 31
}

/// Applies the header's shift to a rewritten IP packet on the host path: `len` added to the
/// sequence number of a client's packet (`from_client`), subtracted from the acknowledgement
/// number and SACK edges of a server's; TCP checksum recomputed. `l4` is the TCP header's offset
/// in `packet`. The same arithmetic as the SYN proxy's, the other way round.
pub fn shift(packet: &mut [u8], l4: usize, from_client: bool, len: u32) {
    synproxy::adjust(packet, l4, from_client, synproxy::Translation { seq: len, ts: 0 });
}

/// The flow of a PROXY-protocol connection as the NIC must hold it: the server → LIP tuple as
/// the record's original one, the client → VIP tuple as its reply one (next hops and hashes
/// swapped with them), [`SERVER_FIRST`] in `host_state`, and `seq_delta` = the header's length,
/// which the NIC then adds to the client's sequence numbers and subtracts from the server's
/// acknowledgements.
pub fn server_first(mut flow: Flow, hashes: FlowHashes, header_len: u32) -> (Flow, FlowHashes) {
    std::mem::swap(&mut flow.orig, &mut flow.reply);
    std::mem::swap(&mut flow.next_hop_orig, &mut flow.next_hop_reply);
    flow.host_state |= SERVER_FIRST;
    flow.seq_delta = Some(header_len);
    (flow, FlowHashes { orig: hashes.reply, reply: hashes.orig })
}

/// A flow read back from the NIC as the host thinks of it (client → VIP first), and whether it
/// was written server first.
pub fn client_first(mut flow: Flow) -> (Flow, bool) {
    if flow.host_state & SERVER_FIRST == 0 {
        return (flow, false);
    }
    std::mem::swap(&mut flow.orig, &mut flow.reply);
    std::mem::swap(&mut flow.next_hop_orig, &mut flow.next_hop_reply);
    flow.host_state &= !SERVER_FIRST;
    (flow, true)
}

/// The counters of a server-first record in the host's order (client to server first).
pub fn swap_counters(mut k: FlowCounters) -> FlowCounters {
    k.packets.swap(0, 1);
    k.bytes.swap(0, 1);
    k.tcp_flags.swap(0, 1);
    k
}

#[cfg(test)]
mod tests;
