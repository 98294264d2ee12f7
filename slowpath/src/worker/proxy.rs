//! The worker's part of the SYN proxy (`synproxy = true` on a TCP service): answering SYNs
//! with cookies, opening the server side once a cookie comes back, holding the client's first
//! segments until the server has answered, and the sequence translation from then on. The
//! cookies, segments and translation themselves are in [`crate::synproxy`].
//!
//! A proxied connection goes:
//!
//! 1. client SYN → SYN-ACK with a cookie (no state, counted in `syn_cookies`);
//! 2. client ACK with a valid cookie → a connection (scheduled, LIP port, SYN_RECV) and a SYN to
//!    the server with the client's ISN; data the client sends meanwhile is held (at most
//!    [`HELD_FRAMES`] segments, more are dropped and counted: the client sends them again);
//! 3. server SYN-ACK → the translation (`C - S`, and `Tp - Ts` with timestamps) is fixed, an
//!    ACK completes the server side, the connection is ESTABLISHED and the held segments go
//!    through; a server that breaks what the client was promised (no timestamps, no window
//!    scaling or a smaller scale) is counted (`synproxy_mismatch`);
//! 4. from then on it is an ordinary connection whose packets are translated on the host path
//!    and, once offloaded, by the NIC (`seq_delta` and `ts_delta` of the record).

use super::{Discard, Out, Punt, Tx, Worker, WorkerStats};
use crate::conn::Dir;
use crate::conn::{State, TcpState};
use crate::packet::{self, L4, Pkt};
use crate::synproxy::{self, Stamps, SynOptions, Translation};
use std::net::SocketAddr;

/// Segments of a client held while the server has not answered.
pub const HELD_FRAMES: usize = 8;

/// Segments one worker holds for all its proxied connections together: proven clients whose
/// servers are slow to answer cannot make a worker keep more than this (about 8 MiB of frames).
pub const HELD_FRAMES_PER_WORKER: usize = 4096;

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A SYN-proxied connection's own state, beside its record.
#[derive(Debug)]
pub(super) struct Proxy {
    /// Our ISN toward the client: the cookie.
    cookie: u32,
    /// The client's ISN, which is also the proxy's ISN toward the server.
    client_isn: u32,
    /// The translation once the server has answered: the NIC's `seq_delta` and `ts_delta`.
    pub(super) delta: Option<Translation>,
    /// With timestamps: the client's TSval of its ACK (our segments to the server carry it)
    /// and our TSval `Tp` that it echoed.
    ts: Option<(u32, u32)>,
    /// The window scale the client was told the server uses, when it was told one.
    promised_wscale: Option<u8>,
    /// The client's segments that came before the server's answer (frames as punted).
    held: Vec<Vec<u8>>,
}

impl Proxy {
    /// A proxied flow adopted from the NIC after a restart (or from a peer's sync): its
    /// translation is in the record.
    pub(super) fn adopted(delta: Translation) -> Self {
        Proxy {
            cookie: 0,
            client_isn: 0,
            delta: Some(delta),
            ts: None,
            promised_wscale: None,
            held: Vec::new(),
        }
    }

    /// Segments it holds.
    pub(super) fn held_count(&self) -> usize {
        self.held.len()
    }
}

impl Worker {
    /// A TCP packet to a SYN-proxied service that matches no connection: a SYN gets a cookie,
    /// an ACK that returns a valid cookie opens the connection, anything else is dropped.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn proxy_first(
        &mut self,
        index: usize,
        client: SocketAddr,
        vip: SocketAddr,
        orig_tag: u32,
        punt: Punt,
        pkt: &Pkt,
        now_ns: u64,
        out: &mut Out,
    ) {
        let (Some(ip), L4::Tcp { flags, seq, ack, header_len, .. }) = (pkt.ip().copied(), pkt.l4) else {
            return out.spent.push(punt.frame);
        };
        match flags & (SYN | ACK | RST) {
            SYN => {
                let options = punt.frame.get(ip.l4 + 20..ip.l4 + header_len).unwrap_or_default();
                let opts = SynOptions::of_syn(options);
                let stamps = Stamps::of(options);
                let offer = self.services.services[index].config.synproxy_offer;
                // Timestamps and window scaling only to a client that asked for them; its own
                // window scale rides in our TSval (see `synproxy`).
                let (ts, wscale) = match stamps.ts {
                    Some((client_val, _)) if offer.timestamps => {
                        let ours = synproxy::our_tsval(now_ns, stamps.wscale);
                        (Some((ours, client_val)), stamps.wscale.map(|_| offer.wscale))
                    }
                    _ => (None, None),
                };
                let cookie = self.cookies.make(client, vip, seq, opts, now_ns);
                let packet = synproxy::syn_ack(vip, client, cookie, seq, &opts.encode_with(ts, wscale));
                out.tx.push(Tx { dst: client.ip(), packet });
                WorkerStats::inc(&self.stats.syn_cookies);
            }
            ACK => {
                let client_isn = seq.wrapping_sub(1);
                let cookie = ack.wrapping_sub(1);
                let Some(opts) = self.cookies.check(client, vip, client_isn, cookie, now_ns) else {
                    self.stats.discard(Discard::BadCookie);
                    return out.spent.push(punt.frame);
                };
                WorkerStats::inc(&self.stats.syn_cookies_accepted);
                let Some(slot) = self.open_conn(index, client, orig_tag, now_ns) else {
                    return out.spent.push(punt.frame);
                };
                let Some(ep) = self.conns.ep_of(slot) else { return };
                // The client's ACK echoes our TSval when the SYN-ACK offered timestamps.
                let options = punt.frame.get(ip.l4 + 20..ip.l4 + header_len).unwrap_or_default();
                let offer = self.services.services[index].config.synproxy_offer;
                let ts = Stamps::of(options).ts.filter(|_| offer.timestamps);
                let client_wscale = ts.and_then(|(_, echoed)| synproxy::client_wscale(echoed));
                let syn_options = opts.encode_with(ts.map(|(val, _)| (val, 0)), client_wscale);
                out.tx.push(Tx {
                    dst: ep.rs.ip(),
                    packet: synproxy::syn(ep.lip, ep.rs, client_isn, &syn_options),
                });
                let promised_wscale = client_wscale.map(|_| offer.wscale);
                let mut proxy =
                    Proxy { cookie, client_isn, delta: None, ts, promised_wscale, held: Vec::new() };
                let payload = (ip.end - ip.l4).saturating_sub(header_len);
                if !synproxy::carries_data(payload, flags) {
                    out.spent.push(punt.frame);
                } else if self.held_frames < HELD_FRAMES_PER_WORKER {
                    self.held_frames += 1;
                    proxy.held.push(punt.frame);
                } else {
                    self.stats.discard(Discard::ProxyHeld);
                    out.spent.push(punt.frame);
                }
                self.proxies.insert(slot, proxy);
            }
            _ => {
                self.stats.discard(Discard::NoConnection);
                out.spent.push(punt.frame);
            }
        }
    }

    /// A packet of a proxied connection (see the module's steps 2 to 4).
    pub(super) fn proxied_packet(
        &mut self,
        slot: u32,
        dir: Dir,
        punt: Punt,
        pkt: &Pkt,
        now_ns: u64,
        out: &mut Out,
    ) {
        let (Some(ip), L4::Tcp { flags, seq, ack, header_len, .. }) = (pkt.ip().copied(), pkt.l4) else {
            self.conn_packet(slot, dir, &punt, pkt, now_ns, out);
            return out.spent.push(punt.frame);
        };
        let Some(p) = self.proxies.get_mut(&slot) else { return out.spent.push(punt.frame) };
        let Some(ep) = self.conns.ep_of(slot) else {
            return out.spent.push(punt.frame);
        };
        let syn_ack = flags & (SYN | ACK | RST) == SYN | ACK;
        match (p.delta, dir) {
            (None, Dir::Reply) if syn_ack && ack == p.client_isn.wrapping_add(1) => {
                let options = punt.frame.get(ip.l4 + 20..ip.l4 + header_len).unwrap_or_default();
                let server = Stamps::of(options);
                let ts = match (p.ts, server.ts) {
                    (Some((_, ours)), Some((server_val, _))) => ours.wrapping_sub(server_val),
                    _ => 0,
                };
                // A server with a larger scale than promised is safe (the client then sees smaller
                // windows than the server offers); a smaller one, or none, is not.
                let short =
                    p.promised_wscale.is_some_and(|promised| server.wscale.is_none_or(|s| s < promised));
                if (p.ts.is_some() && server.ts.is_none()) || short {
                    WorkerStats::inc(&self.stats.synproxy_mismatch);
                }
                p.delta = Some(Translation { seq: p.cookie.wrapping_sub(seq), ts });
                let held = std::mem::take(&mut p.held);
                self.held_frames -= held.len();
                let (isn, server_isn) = (p.client_isn, seq);
                let ts =
                    p.ts.zip(server.ts).map(|((client_val, _), (server_val, _))| (client_val, server_val));
                let packet =
                    synproxy::ack(ep.lip, ep.rs, isn.wrapping_add(1), server_isn.wrapping_add(1), ts);
                out.tx.push(Tx { dst: ep.rs.ip(), packet });
                self.establish(slot, now_ns);
                let meta = punt_meta(&punt);
                out.spent.push(punt.frame);
                for frame in held {
                    let replay = Punt { frame, ..meta.clone() };
                    if let Ok(pkt) = packet::parse(&replay.frame) {
                        self.conn_packet(slot, Dir::Orig, &replay, &pkt, now_ns, out);
                    }
                    out.spent.push(replay.frame);
                }
            }
            (None, Dir::Reply) if flags & RST != 0 => {
                // The server refused: the client, who believes it is connected, is reset.
                let cookie = p.cookie;
                out.tx.push(Tx {
                    dst: ep.client.ip(),
                    packet: synproxy::reset(ep.vip, ep.client, cookie.wrapping_add(1)),
                });
                let generation = self.conns.get(slot).map_or(0, |c| c.generation);
                self.expire(slot, generation, now_ns, out);
                out.spent.push(punt.frame);
            }
            (None, Dir::Orig) if flags & RST == 0 => {
                let payload = (ip.end - ip.l4).saturating_sub(header_len);
                if !synproxy::carries_data(payload, flags) {
                    return out.spent.push(punt.frame);
                }
                if p.held.len() < HELD_FRAMES && self.held_frames < HELD_FRAMES_PER_WORKER {
                    self.held_frames += 1;
                    p.held.push(punt.frame);
                } else {
                    self.stats.discard(Discard::ProxyHeld);
                    out.spent.push(punt.frame);
                }
            }
            (Some(_), Dir::Reply) if syn_ack => {
                // The server sent its SYN-ACK again: our ACK was lost.
                let isn = p.client_isn;
                let options = punt.frame.get(ip.l4 + 20..ip.l4 + header_len).unwrap_or_default();
                let server = Stamps::of(options).ts;
                let ts = p.ts.zip(server).map(|((client_val, _), (server_val, _))| (client_val, server_val));
                let packet = synproxy::ack(ep.lip, ep.rs, isn.wrapping_add(1), seq.wrapping_add(1), ts);
                out.tx.push(Tx { dst: ep.rs.ip(), packet });
                out.spent.push(punt.frame);
            }
            // Before the server's answer: its other packets are dropped, the client's reset is
            // passed on (the server holds our SYN); after it: an ordinary connection.
            (None, Dir::Reply) => out.spent.push(punt.frame),
            _ => {
                self.conn_packet(slot, dir, &punt, pkt, now_ns, out);
                out.spent.push(punt.frame);
            }
        }
    }

    /// Moves a proxied connection to ESTABLISHED once both sides' handshakes are complete.
    fn establish(&mut self, slot: u32, now_ns: u64) {
        let Some((c, route)) = self.conns.with_route(slot) else { return };
        let backend_stats = &*route.backend_stats;
        let before = c.state;
        let after = State::Tcp(TcpState::Established);
        if before == after {
            return;
        }
        c.state = after;
        c.seen(now_ns, now_ns);
        super::path::count_state(backend_stats, before, -1);
        super::path::count_state(backend_stats, after, 1);
        if before == State::Tcp(TcpState::SynRecv) {
            self.stats.half_open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let client = c.ep(route).client.ip();
            self.half_open_src.leave(client);
        }
        self.sync_emit(slot, crate::sync::SyncKind::Changed, now_ns);
    }
}

/// A punt's metadata with no frame (for replaying held frames as if punted again).
fn punt_meta(p: &Punt) -> Punt {
    Punt { port: p.port, reason: p.reason, hit: None, frame: Vec::new() }
}
