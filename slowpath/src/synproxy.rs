//! SYN proxy: SYN cookies, and the TCP segments and sequence translation a proxied connection
//! needs. The worker's part (when to answer, when to open toward the server, what to buffer)
//! is in `worker::proxy`.
//!
//! A SYN to a service with `synproxy = true` creates no state: the worker answers it with a
//! SYN-ACK whose initial sequence number is a cookie (RFC 4987 §3.6) that proves, when the
//! client's ACK acknowledges it, that the client saw our answer at its address. Only then is a
//! connection created and a SYN sent to the server, so a flood of spoofed SYNs costs a hash and
//! a reply each, and no memory.
//!
//! **The cookie** (32 bits, our ISN toward the client):
//!
//! ```text
//!  31      27 26                     4  3   2   0
//! +----------+------------------------+---+-----+
//! | period   | MAC (23 bits)          |SACK| MSS |
//! +----------+------------------------+---+-----+
//! ```
//!
//! `period` is the low 5 bits of the 64-second period the cookie was made in; the MAC is a
//! keyed SipHash (a random key per worker, drawn at start) of the period, the client's and the
//! VIP's address and port, and the client's ISN, so it cannot be forged without the key and a
//! cookie is accepted for two periods (64 to 128 s) only: the key is, in effect, rotated every
//! period. `MSS` indexes [`MSS_TABLE`] (the largest entry not above the client's MSS) and
//! `SACK` says the client offered SACK.
//!
//! **Options.** The proxy's SYN-ACK offers the MSS and SACK-permitted; the SYN it then sends to
//! the server carries the same two, so both sides agree. It offers neither window scaling nor
//! timestamps: their values cannot be known before the server answers, and a SYN-ACK that
//! promised ones the server then does not use would break the connection (LVS's and DPVS's
//! proxies have the same limit unless the servers' values are configured). Windows are
//! therefore at most 64 KiB per round trip on a proxied connection.
//!
//! **Sequence translation.** The client numbers our side from the cookie `C`, the server from
//! its own ISN `S`. Every packet from the server has `C - S` added to its sequence number, and
//! every packet from the client has it subtracted from its acknowledgement number and SACK
//! blocks, exactly as the NIC's record flag `seq_adjust` does for an offloaded flow
//! ([`adjust`] is the host path's copy of it). The client's own sequence numbers are the
//! server's: the proxy opens toward the server with the client's ISN.

use crate::packet::l4_checksum;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

/// Length of a cookie period, nanoseconds (64 s, as Linux).
pub const PERIOD_NS: u64 = 64_000_000_000;

/// The MSS values a cookie can say (index in its low 3 bits). The common Ethernet, tunnel and
/// IPv6 values, and the minimum.
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1220, 1360, 1400, 1440, 1452, 1460];

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// What a client's SYN asked for, as a cookie keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynOptions {
    /// The MSS (one of [`MSS_TABLE`]).
    pub mss: u16,
    /// SACK permitted.
    pub sack: bool,
}

impl SynOptions {
    /// What the proxy keeps of a SYN's options: the largest table MSS not above the client's
    /// (536 without one, RFC 9293's default), and SACK-permitted.
    pub fn of_syn(options: &[u8]) -> Self {
        let mut mss = 536;
        let mut sack = false;
        for (kind, data) in TcpOptions(options) {
            match (kind, data.len()) {
                (2, 2) => mss = u16::from_be_bytes([data[0], data[1]]),
                (4, 0) => sack = true,
                _ => {}
            }
        }
        let index = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0);
        SynOptions { mss: MSS_TABLE[index], sack }
    }

    fn bits(self) -> u32 {
        let index = MSS_TABLE.iter().position(|&m| m == self.mss).unwrap_or(0) as u32;
        (u32::from(self.sack) << 3) | index
    }

    fn from_bits(b: u32) -> Self {
        SynOptions { mss: MSS_TABLE[(b & 7) as usize], sack: b & 8 != 0 }
    }

    /// The options as a SYN or SYN-ACK carries them: MSS, then SACK-permitted padded with
    /// NOPs to a 4-byte boundary.
    pub fn encode(self) -> Vec<u8> {
        let mut o = vec![2, 4];
        o.extend_from_slice(&self.mss.to_be_bytes());
        if self.sack {
            o.extend_from_slice(&[1, 1, 4, 2]);
        }
        o
    }
}

/// Iterates over the TCP options of a header's option bytes: (kind, data). Stops at the end of
/// the list or at a malformed option.
struct TcpOptions<'a>(&'a [u8]);

impl<'a> Iterator for TcpOptions<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&kind, rest) = self.0.split_first()?;
            match kind {
                0 => return None,
                1 => self.0 = rest,
                _ => {
                    let len = usize::from(*rest.first()?);
                    if len < 2 || len > self.0.len() {
                        return None;
                    }
                    let data = &self.0[2..len];
                    self.0 = &self.0[len..];
                    return Some((kind, data));
                }
            }
        }
    }
}

/// A worker's cookie maker and checker.
#[derive(Clone, Debug)]
pub struct SynCookies {
    key: std::collections::hash_map::RandomState,
}

impl Default for SynCookies {
    fn default() -> Self {
        SynCookies { key: std::collections::hash_map::RandomState::new() }
    }
}

impl SynCookies {
    fn mac(&self, period: u64, client: SocketAddr, vip: SocketAddr, client_isn: u32) -> u32 {
        (self.key.hash_one((period, client, vip, client_isn)) as u32) & 0x7F_FFFF
    }

    /// The cookie for a SYN from `client` to `vip` with ISN `client_isn`, at `now_ns`.
    pub fn make(
        &self,
        client: SocketAddr,
        vip: SocketAddr,
        client_isn: u32,
        opts: SynOptions,
        now_ns: u64,
    ) -> u32 {
        let period = now_ns / PERIOD_NS;
        ((period as u32 & 31) << 27) | (self.mac(period, client, vip, client_isn) << 4) | opts.bits()
    }

    /// Whether `cookie` is one this worker made, in this period or the last, for this client,
    /// VIP and client ISN; the options it carries if so.
    pub fn check(
        &self,
        client: SocketAddr,
        vip: SocketAddr,
        client_isn: u32,
        cookie: u32,
        now_ns: u64,
    ) -> Option<SynOptions> {
        let now = now_ns / PERIOD_NS;
        let age = (now as u32).wrapping_sub(cookie >> 27) & 31;
        if age > 1 {
            return None;
        }
        let period = now.checked_sub(u64::from(age))?;
        let mac = (cookie >> 4) & 0x7F_FFFF;
        (mac == self.mac(period, client, vip, client_isn)).then(|| SynOptions::from_bits(cookie))
    }
}

/// A TCP header with `options` (padded to 4 bytes) and no payload, checksum zero
/// (`emit::ip_packet` fills it in).
pub fn segment(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: &[u8],
) -> Vec<u8> {
    let opt_len = options.len().div_ceil(4) * 4;
    let mut seg = vec![0u8; 20 + opt_len];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    seg[8..12].copy_from_slice(&ack.to_be_bytes());
    seg[12] = (((20 + opt_len) / 4) as u8) << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&window.to_be_bytes());
    // Any padding after the options is end-of-list (zero) bytes.
    seg[20..20 + options.len()].copy_from_slice(options);
    seg
}

/// The SYN-ACK the proxy answers a SYN with: from the VIP, ISN `cookie`.
pub fn syn_ack(
    vip: SocketAddr,
    client: SocketAddr,
    cookie: u32,
    client_isn: u32,
    opts: SynOptions,
) -> Vec<u8> {
    let seg = segment(
        vip.port(),
        client.port(),
        cookie,
        client_isn.wrapping_add(1),
        TCP_SYN | TCP_ACK,
        65535,
        &opts.encode(),
    );
    crate::emit::ip_packet(vip.ip(), client.ip(), rtl_spec::wire::IPPROTO_TCP, 64, seg, 16)
}

/// The SYN the proxy opens the server side with: from the LIP, with the client's ISN.
pub fn syn(lip: SocketAddr, rs: SocketAddr, client_isn: u32, opts: SynOptions) -> Vec<u8> {
    let seg = segment(lip.port(), rs.port(), client_isn, 0, TCP_SYN, 65535, &opts.encode());
    crate::emit::ip_packet(lip.ip(), rs.ip(), rtl_spec::wire::IPPROTO_TCP, 64, seg, 16)
}

/// The ACK that completes the server side's handshake.
pub fn ack(lip: SocketAddr, rs: SocketAddr, seq: u32, ack: u32) -> Vec<u8> {
    let seg = segment(lip.port(), rs.port(), seq, ack, TCP_ACK, 65535, &[]);
    crate::emit::ip_packet(lip.ip(), rs.ip(), rtl_spec::wire::IPPROTO_TCP, 64, seg, 16)
}

/// A reset from the VIP to the client, in the client's view of our sequence space.
pub fn reset(vip: SocketAddr, client: SocketAddr, seq: u32) -> Vec<u8> {
    let seg = segment(vip.port(), client.port(), seq, 0, 0x04, 0, &[]);
    crate::emit::ip_packet(vip.ip(), client.ip(), rtl_spec::wire::IPPROTO_TCP, 64, seg, 16)
}

/// Whether a segment carries anything for the server to receive (payload or FIN).
pub fn carries_data(payload_len: usize, flags: u8) -> bool {
    payload_len > 0 || flags & TCP_FIN != 0
}

/// Applies a proxied connection's translation to a rewritten IP packet (the host path's copy of
/// the NIC's `seq_adjust`): from the server (`reply`), `delta` is added to the sequence number;
/// from the client, it is subtracted from the acknowledgement number and every SACK block's
/// edges. The TCP checksum is recomputed. `l4` is the TCP header's offset in `packet`. A packet
/// that is not TCP over a well-formed header is left as it is.
pub fn adjust(packet: &mut [u8], l4: usize, reply: bool, delta: u32) {
    let (src, dst) = match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => (
            IpAddr::from(<[u8; 4]>::try_from(&packet[12..16]).unwrap_or_default()),
            IpAddr::from(<[u8; 4]>::try_from(&packet[16..20]).unwrap_or_default()),
        ),
        Some(6) if packet.len() >= 40 => (
            IpAddr::from(<[u8; 16]>::try_from(&packet[8..24]).unwrap_or_default()),
            IpAddr::from(<[u8; 16]>::try_from(&packet[24..40]).unwrap_or_default()),
        ),
        _ => return,
    };
    let Some(seg) = packet.get_mut(l4..) else { return };
    if seg.len() < 20 {
        return;
    }
    let header_len = usize::from(seg[12] >> 4) * 4;
    if header_len < 20 || header_len > seg.len() {
        return;
    }
    let field = |seg: &mut [u8], at: usize, f: &dyn Fn(u32) -> u32| {
        let v = u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
        seg[at..at + 4].copy_from_slice(&f(v).to_be_bytes());
    };
    if reply {
        field(seg, 4, &|v| v.wrapping_add(delta));
    } else {
        if seg[13] & TCP_ACK != 0 {
            field(seg, 8, &|v| v.wrapping_sub(delta));
        }
        let mut at = 20;
        while at < header_len {
            match seg[at] {
                0 => break,
                1 => at += 1,
                kind => {
                    let len = usize::from(*seg.get(at + 1).unwrap_or(&0));
                    if len < 2 || at + len > header_len {
                        break;
                    }
                    if kind == 5 {
                        let mut edge = at + 2;
                        while edge + 4 <= at + len {
                            field(seg, edge, &|v| v.wrapping_sub(delta));
                            edge += 4;
                        }
                    }
                    at += len;
                }
            }
        }
    }
    seg[16..18].copy_from_slice(&[0, 0]);
    let c = l4_checksum(src, dst, rtl_spec::wire::IPPROTO_TCP, seg, 16);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests;
