//! TOA ("TCP Option Address", `proxy_protocol = "toa"`): the client's IPv4 address and port in
//! a TCP option of the segments that reach the server, as LVS FullNAT did for servers running
//! the TOA kernel module (which reads it from the segment that completes the handshake and
//! makes `getpeername()` answer with the client instead of the LIP).
//!
//! **The option**: kind 254, length 8, the client's port (2 bytes) then its IPv4 address (4),
//! network byte order, the module's `struct toa_data`.
//!
//! **Which segments.** The module takes the option from the segment that moves the server's
//! socket from SYN_RECV to ESTABLISHED: the client's third-step ACK, or, if that was lost, the
//! client's next segment. So the slow path inserts it into *every* client segment it forwards
//! (after the SYN) until a server segment other than a SYN-ACK shows that the server is
//! established; only then may the flow be offloaded (the NIC never inserts an option). Linux
//! ignores the option on every later segment and on servers without the module.
//!
//! **Room.** The option makes the segment 8 bytes longer: when the TCP header would pass 60
//! bytes or the packet the smallest port MTU, the segment goes without it and the refusal is
//! counted (`toa_no_room`); a later segment may still carry it.
//!
//! **Limits.** IPv4 only: the option has room for an IPv4 address alone (the configuration
//! refuses `"toa"` on an IPv6 service). Not with the SYN proxy (the proxy completes the server's
//! handshake with its own ACK).

use crate::packet::{fold, l4_checksum, sum_words};
use rtl_spec::wire::{IPPROTO_TCP, Ipv4Header, TcpHeader};
use std::net::{IpAddr, SocketAddrV4};
use zerocopy::FromBytes;
use zerocopy::network_endian::U16;

/// The option's kind.
pub const KIND: u8 = 254;
/// The option's length.
pub const LEN: usize = 8;
/// The longest TCP header.
const MAX_TCP_HEADER: usize = 60;

/// The option for `client`.
pub fn option(client: SocketAddrV4) -> [u8; LEN] {
    let mut o = [KIND, LEN as u8, 0, 0, 0, 0, 0, 0];
    o[2..4].copy_from_slice(&client.port().to_be_bytes());
    o[4..8].copy_from_slice(&client.ip().octets());
    o
}

/// Why the option was not inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The TCP header would pass 60 bytes, or the packet `mtu`.
    NoRoom,
    /// Not a well-formed IPv4 TCP packet.
    NotTcp4,
}

/// Inserts the option for `client` after the TCP options of `packet` (an IPv4 TCP packet with
/// no L2 header, as the rewrite leaves it): the data offset, the IPv4 total length and both
/// checksums follow. A packet it cannot take is left as it is.
pub fn insert(packet: &mut Vec<u8>, client: SocketAddrV4, mtu: usize) -> Result<(), Refused> {
    let (ip, _) = Ipv4Header::ref_from_prefix(packet).map_err(|_| Refused::NotTcp4)?;
    let l4 = ip.header_len();
    if ip.version() != 4
        || ip.proto != IPPROTO_TCP
        || l4 < 20
        || usize::from(ip.total_len.get()) != packet.len()
    {
        return Err(Refused::NotTcp4);
    }
    let (src, dst) = (IpAddr::from(ip.src), IpAddr::from(ip.dst));
    let tcp = packet.get(l4..).and_then(|s| TcpHeader::ref_from_prefix(s).ok()).ok_or(Refused::NotTcp4)?.0;
    let th = tcp.header_len();
    if th < 20 || l4 + th > packet.len() {
        return Err(Refused::NotTcp4);
    }
    if th + LEN > MAX_TCP_HEADER || packet.len() + LEN > mtu {
        return Err(Refused::NoRoom);
    }
    let at = l4 + th;
    packet.splice(at..at, option(client));
    let total = packet.len();
    {
        let (ip, _) = Ipv4Header::mut_from_prefix(packet).map_err(|_| Refused::NotTcp4)?;
        ip.total_len = U16::new(total as u16);
        ip.checksum = U16::new(0);
    }
    let c = fold(sum_words(0, &packet[..l4]));
    packet[10..12].copy_from_slice(&c.to_be_bytes());
    let seg = &mut packet[l4..];
    seg[12] = ((((th + LEN) / 4) as u8) << 4) | (seg[12] & 0x0F);
    let c = l4_checksum(src, dst, IPPROTO_TCP, seg, 16);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests;
