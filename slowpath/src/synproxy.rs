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
//! **Options.** The proxy's SYN-ACK offers the MSS and SACK-permitted as the client did, and,
//! when the client's SYN carried them and the service allows (`synproxy_timestamps`, default
//! on), timestamps and window scaling. The servers' values cannot be known before a server
//! answers, so they are the service's: the window scale offered to the client is
//! `synproxy_wscale` (default 7: Linux picks 7 with 6 MiB of `tcp_rmem`, 10 with the 32 MiB
//! of recent kernels), which must be the
//! servers' own or below it (as for LVS's, DPVS's and netfilter's SYN proxies). A server with a
//! larger scale is safe: the client reads the server's windows as smaller than they are. One
//! with a smaller scale, no scaling or no timestamps is counted in `synproxy_mismatch`: its
//! connection goes on, but a client told a larger scale than the server's may overrun the
//! server's window and lose segments to it.
//!
//! The stateless handshake keeps the client's own window scale in the low 4 bits of our TSval
//! ([`our_tsval`], as Linux's cookies do): the client echoes it in its ACK, and the SYN the
//! proxy then sends to the server carries it, with the client's MSS, SACK and timestamps, so the
//! server and the client agree on every option. Without timestamps there is nowhere to keep
//! it, so no window scaling is offered either (a proxied connection's windows are then at most
//! 64 KiB per round trip).
//!
//! **Timestamps.** The client sees our TSval `Tp` in the SYN-ACK, the server picks its own `Ts`:
//! every server TSval has `Tp - Ts` added and every client TSecr has it subtracted (the NIC's
//! `ts_delta`, [`Translation::ts`]), so the client's PAWS check sees one clock and the server
//! its own echoes.
//!
//! **Sequence translation.** The client numbers our side from the cookie `C`, the server from
//! its own ISN `S`. Every packet from the server has `C - S` added to its sequence number, and
//! every packet from the client has it subtracted from its acknowledgement number and SACK
//! blocks, exactly as the NIC's record flag `seq_adjust` does for an offloaded flow
//! ([`adjust`] is the host path's copy of it, timestamps included). The client's own sequence
//! numbers are the server's: the proxy opens toward the server with the client's ISN.

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

    /// The options as a SYN or SYN-ACK without timestamps carries them: MSS, then
    /// SACK-permitted padded with NOPs to a 4-byte boundary.
    pub fn encode(self) -> Vec<u8> {
        self.encode_with(None, None)
    }

    /// The options of a SYN or SYN-ACK, in the order and padding Linux uses: MSS,
    /// SACK-permitted, timestamps (TSval, TSecr), window scale; 20 bytes at most.
    pub fn encode_with(self, ts: Option<(u32, u32)>, wscale: Option<u8>) -> Vec<u8> {
        let mut o = Vec::with_capacity(20);
        o.extend_from_slice(&[2, 4]);
        o.extend_from_slice(&self.mss.to_be_bytes());
        match (self.sack, ts) {
            (true, Some(_)) => o.extend_from_slice(&[4, 2]),
            (true, None) => o.extend_from_slice(&[1, 1, 4, 2]),
            (false, Some(_)) => o.extend_from_slice(&[1, 1]),
            (false, None) => {}
        }
        if let Some((val, ecr)) = ts {
            o.extend_from_slice(&[8, 10]);
            o.extend_from_slice(&val.to_be_bytes());
            o.extend_from_slice(&ecr.to_be_bytes());
        }
        if let Some(shift) = wscale {
            o.extend_from_slice(&[1, 3, 3, shift.min(MAX_WSCALE)]);
        }
        o
    }
}

/// The largest window scale shift (RFC 7323 §2.3: a larger one is taken as 14).
pub const MAX_WSCALE: u8 = 14;

/// What the proxy promises clients on behalf of a service's servers (its configuration):
/// whether it offers timestamps (and with them window scaling), and the servers' window scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// `synproxy_timestamps`: timestamps and window scaling are offered to clients that ask.
    pub timestamps: bool,
    /// `synproxy_wscale`: the window scale the servers use, told to clients as ours.
    pub wscale: u8,
}

impl Default for Offer {
    /// Timestamps on, window scale 7 (Linux's with its default receive buffers).
    fn default() -> Self {
        Offer { timestamps: true, wscale: 7 }
    }
}

/// The timestamp and window-scale options of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamps {
    /// TSval and TSecr, when the segment has a timestamp option.
    pub ts: Option<(u32, u32)>,
    /// The window scale shift (at most [`MAX_WSCALE`]), when it has that option.
    pub wscale: Option<u8>,
}

impl Stamps {
    /// The timestamp and window-scale options among a TCP header's option bytes (malformed
    /// ones are not seen).
    pub fn of(options: &[u8]) -> Self {
        let mut s = Stamps::default();
        for (kind, data) in TcpOptions(options) {
            match (kind, data.len()) {
                (3, 1) => s.wscale = Some(data[0].min(MAX_WSCALE)),
                (8, 8) => {
                    let word =
                        |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
                    s.ts = Some((word(0), word(4)));
                }
                _ => {}
            }
        }
        s
    }
}

/// The low bits of our TSval that keep the client's window scale (15: it offered none).
const WSCALE_BITS: u32 = 0xF;

/// Our TSval in a SYN-ACK sent at `now_ns`: the time in milliseconds, its low 4 bits replaced
/// by the client's window scale (15 for none), which the client's ACK then echoes back.
pub fn our_tsval(now_ns: u64, client_wscale: Option<u8>) -> u32 {
    let code = client_wscale.map_or(WSCALE_BITS, |s| u32::from(s.min(MAX_WSCALE)));
    ((now_ns / 1_000_000) as u32 & !WSCALE_BITS) | code
}

/// The client's window scale as [`our_tsval`] kept it, read from the TSecr of its ACK.
pub fn client_wscale(echoed: u32) -> Option<u8> {
    let code = echoed & WSCALE_BITS;
    (code != WSCALE_BITS).then_some(code as u8)
}

/// A proxied connection's translation between the client's view and the server's: the
/// sequence delta `C - S` and the timestamp delta `Tp - Ts` (0: none), the NIC's `seq_delta`
/// and `ts_delta`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Translation {
    /// Added to the server's sequence numbers, subtracted from the client's ACK and SACK edges.
    pub seq: u32,
    /// Added to the server's TSvals, subtracted from the client's TSecrs.
    pub ts: u32,
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

/// The SYN-ACK the proxy answers a SYN with: from the VIP, ISN `cookie`, with `options`
/// ([`SynOptions::encode_with`]).
pub fn syn_ack(vip: SocketAddr, client: SocketAddr, cookie: u32, client_isn: u32, options: &[u8]) -> Vec<u8> {
    let seg = segment(
        vip.port(),
        client.port(),
        cookie,
        client_isn.wrapping_add(1),
        TCP_SYN | TCP_ACK,
        65535,
        options,
    );
    crate::emit::ip_packet(vip.ip(), client.ip(), rtl_spec::wire::IPPROTO_TCP, 64, seg, 16)
}

/// The SYN the proxy opens the server side with: from the LIP, with the client's ISN and the
/// client's options (`options`, [`SynOptions::encode_with`]).
pub fn syn(lip: SocketAddr, rs: SocketAddr, client_isn: u32, options: &[u8]) -> Vec<u8> {
    let seg = segment(lip.port(), rs.port(), client_isn, 0, TCP_SYN, 65535, options);
    crate::emit::ip_packet(lip.ip(), rs.ip(), rtl_spec::wire::IPPROTO_TCP, 64, seg, 16)
}

/// The ACK that completes the server side's handshake, with a timestamp option (the client's
/// TSval, the server's echoed) when the connection has them.
pub fn ack(lip: SocketAddr, rs: SocketAddr, seq: u32, ack: u32, ts: Option<(u32, u32)>) -> Vec<u8> {
    let mut options = Vec::with_capacity(12);
    if let Some((val, ecr)) = ts {
        options.extend_from_slice(&[1, 1, 8, 10]);
        options.extend_from_slice(&val.to_be_bytes());
        options.extend_from_slice(&ecr.to_be_bytes());
    }
    let seg = segment(lip.port(), rs.port(), seq, ack, TCP_ACK, 65535, &options);
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
/// the NIC's `seq_adjust` with `ts_delta`): from the server (`reply`), `t.seq` is added to the
/// sequence number and `t.ts` to the timestamp option's TSval; from the client, `t.seq` is
/// subtracted from the acknowledgement number and every SACK block's edges and `t.ts` from the
/// TSecr. The TCP checksum is recomputed. `l4` is the TCP header's offset in `packet`. A packet
/// that is not TCP over a well-formed header is left as it is, and so is an option list from
/// its first malformed option on.
pub fn adjust(packet: &mut [u8], l4: usize, reply: bool, t: Translation) {
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
        field(seg, 4, &|v| v.wrapping_add(t.seq));
    } else if seg[13] & TCP_ACK != 0 {
        field(seg, 8, &|v| v.wrapping_sub(t.seq));
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
                match (kind, reply) {
                    (5, false) => {
                        let mut edge = at + 2;
                        while edge + 4 <= at + len {
                            field(seg, edge, &|v| v.wrapping_sub(t.seq));
                            edge += 4;
                        }
                    }
                    (8, true) if len == 10 => field(seg, at + 2, &|v| v.wrapping_add(t.ts)),
                    (8, false) if len == 10 => field(seg, at + 6, &|v| v.wrapping_sub(t.ts)),
                    _ => {}
                }
                at += len;
            }
        }
    }
    seg[16..18].copy_from_slice(&[0, 0]);
    let c = l4_checksum(src, dst, rtl_spec::wire::IPPROTO_TCP, seg, 16);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests;
