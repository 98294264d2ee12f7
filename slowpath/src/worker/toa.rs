//! The worker's part of TOA (`proxy_protocol = "toa"` on an IPv4 TCP service): the option in
//! each client segment the host path forwards until the server is established, and no offload
//! before that. The option and its insertion are in [`crate::toa`].

use super::{Worker, WorkerStats};
use crate::addr::FastSet;
use crate::conn::{Dir, Endpoints};
use crate::proxy_protocol::ProxyProtocol;
use crate::toa::{Refused, insert};
use std::net::SocketAddr;

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A forwarded segment (`packet`, rewritten, with `flags`) of TOA connection `slot` that still
/// waits for its server: a client's ACK gets the option (counted, or counted as refused for want
/// of room); a server's segment other than a SYN-ACK shows that the server is established, and
/// the connection stops waiting. Returns whether it still waits (and must stay on the host).
pub(super) fn toa_packet(
    toas: &mut FastSet<u32>,
    stats: &WorkerStats,
    mtu: u16,
    (slot, dir, flags): (u32, Dir, u8),
    ep: &Endpoints,
    packet: &mut Vec<u8>,
) -> bool {
    match dir {
        Dir::Orig if flags & ACK != 0 && flags & (SYN | RST) == 0 => {
            if let SocketAddr::V4(client) = ep.client {
                match insert(packet, client, usize::from(mtu)) {
                    Ok(()) => WorkerStats::inc(&stats.toa_inserted),
                    Err(Refused::NoRoom) => WorkerStats::inc(&stats.toa_no_room),
                    Err(Refused::NotTcp4) => {}
                }
            }
            true
        }
        Dir::Reply if flags & ACK != 0 && flags & SYN == 0 => {
            toas.remove(&slot);
            false
        }
        _ => true,
    }
}

impl Worker {
    /// Whether a client's SYN on the tuple of connection `slot` starts a new connection of a
    /// TOA service (the port reused after the server was established): the old flow, which the
    /// NIC forwards without the option, must go.
    pub(super) fn toa_reused(&self, slot: u32) -> bool {
        let Some(c) = self.conns.get(slot) else { return false };
        let toa = self
            .services
            .find(&self.conns.route(c).service())
            .is_some_and(|(_, s)| s.config.proxy_protocol == Some(ProxyProtocol::Toa));
        toa && !self.toas.contains(&slot)
    }
}
