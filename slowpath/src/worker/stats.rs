//! A worker's counters, readable from other threads, and the reasons it drops a packet (each
//! with a counter of its own).

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a worker dropped a packet. Each has a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Discard {
    /// Could not be parsed.
    Malformed,
    /// Bad IP or transport checksum.
    BadChecksum,
    /// A TCP packet other than a SYN matching no connection (no connection is created).
    NoConnection,
    /// To an address the appliance does not serve.
    NotOurs,
    /// A new connection to a VIP and port with no service.
    NoService,
    /// A new connection when no server is available.
    NoBackend,
    /// A new connection over the service's connection limit.
    OverLimit,
    /// A SYN over the worker's half-open bound.
    HalfOpen,
    /// A SYN from a client address that holds its half-open bound already.
    HalfOpenSource,
    /// No local port free (LIP exhaustion).
    NoPort,
    /// A fragment (not reassembled).
    Fragment,
    /// TTL or hop limit expired.
    TtlExpired,
    /// Over the egress MTU.
    OverMtu,
    /// ICMP the appliance does not answer or translate.
    Icmp,
    /// Another protocol or frame type.
    Unsupported,
    /// An ACK to a SYN-proxied service that returns no valid cookie.
    BadCookie,
    /// A client's segment of a SYN-proxied connection beyond what is held while the server has
    /// not answered (the client sends it again).
    ProxyHeld,
    /// A PROXY-protocol connection whose server never acknowledged the header (sent
    /// `proxy_protocol::MAX_SENDS` times): the connection is ended and reset.
    ProxyProtocolUnacked,
}

impl Discard {
    /// Every reason, in counter order.
    pub const ALL: [Discard; 18] = [
        Discard::Malformed,
        Discard::BadChecksum,
        Discard::NoConnection,
        Discard::NotOurs,
        Discard::NoService,
        Discard::NoBackend,
        Discard::OverLimit,
        Discard::HalfOpen,
        Discard::HalfOpenSource,
        Discard::NoPort,
        Discard::Fragment,
        Discard::TtlExpired,
        Discard::OverMtu,
        Discard::Icmp,
        Discard::Unsupported,
        Discard::BadCookie,
        Discard::ProxyHeld,
        Discard::ProxyProtocolUnacked,
    ];

    /// The name metrics and `sluice stats` use.
    pub fn name(self) -> &'static str {
        match self {
            Discard::Malformed => "malformed",
            Discard::BadChecksum => "bad_checksum",
            Discard::NoConnection => "no_connection",
            Discard::NotOurs => "not_ours",
            Discard::NoService => "no_service",
            Discard::NoBackend => "no_backend",
            Discard::OverLimit => "over_limit",
            Discard::HalfOpen => "half_open",
            Discard::HalfOpenSource => "half_open_source",
            Discard::NoPort => "no_port",
            Discard::Fragment => "fragment",
            Discard::TtlExpired => "ttl_expired",
            Discard::OverMtu => "over_mtu",
            Discard::Icmp => "icmp",
            Discard::Unsupported => "unsupported",
            Discard::BadCookie => "bad_cookie",
            Discard::ProxyHeld => "proxy_held",
            Discard::ProxyProtocolUnacked => "proxy_protocol_unacked",
        }
    }
}

/// A worker's counters, readable from other threads.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Packets handled.
    pub packets: AtomicU64,
    /// Packets forwarded by the host path (rewritten and sent).
    pub forwarded: AtomicU64,
    /// Connections created.
    pub created: AtomicU64,
    /// Connections expired or removed.
    pub expired: AtomicU64,
    /// Connections offloaded to the NIC.
    pub offloaded: AtomicU64,
    /// Offloads the full NIC table refused (the connection stayed on the host path).
    pub offload_full: AtomicU64,
    /// Connections now.
    pub current: AtomicU64,
    /// Half-open connections now.
    pub half_open: AtomicU64,
    /// ICMP echo replies sent.
    pub echo_replies: AtomicU64,
    /// ICMP errors translated to the other side of a connection.
    pub icmp_translated: AtomicU64,
    /// Resets sent for connections removed with a reset.
    pub resets: AtomicU64,
    /// SYN-ACKs with a SYN cookie sent (SYN-proxied services).
    pub syn_cookies: AtomicU64,
    /// Valid cookies returned, each a proxied connection opened.
    pub syn_cookies_accepted: AtomicU64,
    /// Proxied connections whose server broke what the client was promised: no timestamps, no
    /// window scaling, or a smaller window scale.
    pub synproxy_mismatch: AtomicU64,
    /// PROXY protocol v2 headers sent to servers (one per connection).
    pub pp_headers: AtomicU64,
    /// PROXY protocol v2 headers sent again (the server had not acknowledged them in time).
    pub pp_retransmits: AtomicU64,
    /// Client segments that carried a TOA option to the server.
    pub toa_inserted: AtomicU64,
    /// Client segments that went without the TOA option for want of room (TCP header or MTU).
    pub toa_no_room: AtomicU64,
    /// Drops, indexed by [`Discard`].
    pub drops: [AtomicU64; 18],
}

impl WorkerStats {
    pub(super) fn discard(&self, d: Discard) {
        self.drops[d as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
