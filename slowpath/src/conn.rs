//! Connections: the FullNAT four endpoints, the TCP state machine and UDP, per-state timeouts,
//! and the offload policy that decides when the NIC takes a connection over.
//!
//! The state machine is LVS's, reduced to what a FullNAT proxy in the middle can see: each
//! packet moves the state by its direction (original: client → VIP; reply: server → LIP) and
//! its flags. Once a connection is offloaded the NIC forwards its packets, but still punts
//! TCP SYN, FIN and RST on a hit, so the closing states are still driven from here.

use std::net::SocketAddr;
use std::time::Duration;

/// TCP states (LVS's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// The client's SYN was forwarded; the handshake is not complete.
    SynRecv,
    /// The handshake completed.
    Established,
    /// The client sent FIN.
    FinWait,
    /// The server sent FIN.
    CloseWait,
    /// The server closed, then the client.
    LastAck,
    /// Both sides sent FIN.
    TimeWait,
    /// A RST was seen: the connection is closing at once.
    Close,
}

/// A connection's protocol state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// A TCP connection in its state.
    Tcp(TcpState),
    /// UDP: whether the server has answered.
    Udp {
        /// The server has sent a datagram back.
        replied: bool,
    },
}

impl State {
    /// The name `sluice flows` prints (ipvsadm's).
    pub fn name(&self) -> &'static str {
        match self {
            State::Tcp(TcpState::SynRecv) => "SYN_RECV",
            State::Tcp(TcpState::Established) => "ESTABLISHED",
            State::Tcp(TcpState::FinWait) => "FIN_WAIT",
            State::Tcp(TcpState::CloseWait) => "CLOSE_WAIT",
            State::Tcp(TcpState::LastAck) => "LAST_ACK",
            State::Tcp(TcpState::TimeWait) => "TIME_WAIT",
            State::Tcp(TcpState::Close) => "CLOSE",
            State::Udp { .. } => "UDP",
        }
    }

    /// Whether IPVS counts it as active (ESTABLISHED) rather than inactive.
    pub fn is_active(&self) -> bool {
        matches!(self, State::Tcp(TcpState::Established))
    }

    /// The byte kept in the NIC record (`host_state`) so that a restarted daemon can adopt it.
    pub fn to_host_state(self) -> u8 {
        match self {
            State::Tcp(TcpState::SynRecv) => 1,
            State::Tcp(TcpState::Established) => 2,
            State::Tcp(TcpState::FinWait) => 3,
            State::Tcp(TcpState::CloseWait) => 4,
            State::Tcp(TcpState::LastAck) => 5,
            State::Tcp(TcpState::TimeWait) => 6,
            State::Tcp(TcpState::Close) => 7,
            State::Udp { replied: false } => 16,
            State::Udp { replied: true } => 17,
        }
    }

    /// The state of a `host_state` byte, if it is one.
    pub fn from_host_state(b: u8) -> Option<State> {
        Some(match b {
            1 => State::Tcp(TcpState::SynRecv),
            2 => State::Tcp(TcpState::Established),
            3 => State::Tcp(TcpState::FinWait),
            4 => State::Tcp(TcpState::CloseWait),
            5 => State::Tcp(TcpState::LastAck),
            6 => State::Tcp(TcpState::TimeWait),
            7 => State::Tcp(TcpState::Close),
            16 => State::Udp { replied: false },
            17 => State::Udp { replied: true },
            _ => return None,
        })
    }
}

/// Which way a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client → VIP (leaves as LIP → server).
    Orig,
    /// Server → LIP (leaves as VIP → client).
    Reply,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

impl TcpState {
    /// The state after a packet with `flags` going `dir`.
    #[must_use]
    pub fn next(self, dir: Dir, flags: u8) -> TcpState {
        use TcpState::{Close, CloseWait, Established, FinWait, LastAck, SynRecv, TimeWait};
        if flags & RST != 0 {
            return Close;
        }
        let fin = flags & FIN != 0;
        match (self, dir) {
            // A SYN again (a retransmission, or the client's port reused while the close is
            // under way): the handshake starts over. After the close (TIME_WAIT, or a reset) the
            // worker opens a new connection instead, scheduled afresh (`Worker::transport`).
            (_, Dir::Orig) if flags & SYN != 0 && flags & ACK == 0 => SynRecv,
            (SynRecv, Dir::Orig) if fin => FinWait,
            (SynRecv, Dir::Orig) if flags & ACK != 0 => Established,
            (Established, Dir::Orig) if fin => FinWait,
            (Established, Dir::Reply) if fin => CloseWait,
            (FinWait, Dir::Reply) if fin => TimeWait,
            (CloseWait, Dir::Orig) if fin => LastAck,
            (LastAck, Dir::Reply) if flags & ACK != 0 => TimeWait,
            (s, _) => s,
        }
    }
}

impl TcpState {
    /// The state after a client's packet with `flags` on a one-way connection (DR, TUN), whose
    /// server answers the client directly: LVS's input-only table. The client's ACK completes
    /// the handshake, its FIN or RST closes; the closing state then ends by its timeout, since
    /// the server's FIN is never seen.
    #[must_use]
    pub fn next_one_way(self, flags: u8) -> TcpState {
        use TcpState::{Close, Established, FinWait, SynRecv};
        if flags & RST != 0 {
            return Close;
        }
        let fin = flags & FIN != 0;
        match self {
            _ if flags & SYN != 0 && flags & ACK == 0 => SynRecv,
            SynRecv | Established if fin => FinWait,
            SynRecv if flags & ACK != 0 => Established,
            s => s,
        }
    }
}

/// Per-state timeouts. Defaults are DPVS's (the FullNAT appliance): ESTABLISHED 90 s, SYN_RECV
/// 30 s, the closing states 7 s, CLOSE 3 s, UDP 300 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// ESTABLISHED (also the NIC's idle timeout of an offloaded TCP flow).
    pub tcp_established: Duration,
    /// SYN_RECV.
    pub tcp_syn_recv: Duration,
    /// FIN_WAIT.
    pub tcp_fin_wait: Duration,
    /// CLOSE_WAIT.
    pub tcp_close_wait: Duration,
    /// LAST_ACK.
    pub tcp_last_ack: Duration,
    /// TIME_WAIT.
    pub tcp_time_wait: Duration,
    /// CLOSE (after a RST).
    pub tcp_close: Duration,
    /// UDP (also the NIC's idle timeout of an offloaded UDP flow).
    pub udp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            tcp_established: s(90),
            tcp_syn_recv: s(30),
            tcp_fin_wait: s(7),
            tcp_close_wait: s(7),
            tcp_last_ack: s(7),
            tcp_time_wait: s(7),
            tcp_close: s(3),
            udp: s(300),
        }
    }
}

impl Timeouts {
    /// The timeout of a state.
    pub fn of(&self, s: State) -> Duration {
        match s {
            State::Tcp(TcpState::SynRecv) => self.tcp_syn_recv,
            State::Tcp(TcpState::Established) => self.tcp_established,
            State::Tcp(TcpState::FinWait) => self.tcp_fin_wait,
            State::Tcp(TcpState::CloseWait) => self.tcp_close_wait,
            State::Tcp(TcpState::LastAck) => self.tcp_last_ack,
            State::Tcp(TcpState::TimeWait) => self.tcp_time_wait,
            State::Tcp(TcpState::Close) => self.tcp_close,
            State::Udp { .. } => self.udp,
        }
    }
}

/// When a connection goes to the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadPolicy {
    /// Offload at all.
    pub enabled: bool,
    /// TCP: only once the handshake has completed (the kernel flowtable's rule); otherwise from
    /// the first packet.
    pub tcp_after_handshake: bool,
    /// UDP: only once the server has answered; otherwise from the first datagram.
    pub udp_after_reply: bool,
    /// Hold back connections that have carried fewer packets (both directions, host path).
    pub min_packets: u64,
    /// Hold back connections younger than this.
    pub min_age: Duration,
}

impl Default for OffloadPolicy {
    fn default() -> Self {
        OffloadPolicy {
            enabled: true,
            tcp_after_handshake: true,
            udp_after_reply: true,
            min_packets: 0,
            min_age: Duration::ZERO,
        }
    }
}

impl OffloadPolicy {
    /// Whether a connection in `state`, `age` old, having carried `packets`, qualifies.
    pub fn qualifies(&self, state: State, age: Duration, packets: u64) -> bool {
        if !self.enabled || packets < self.min_packets || age < self.min_age {
            return false;
        }
        match state {
            State::Tcp(TcpState::Established) => true,
            State::Tcp(TcpState::SynRecv) => !self.tcp_after_handshake,
            State::Tcp(_) => false,
            State::Udp { replied } => replied || !self.udp_after_reply,
        }
    }
}

/// Where a connection's packets are forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offload {
    /// By the host (not offloaded yet, or the policy holds it back).
    Host,
    /// An install was asked for and its result has not come back.
    Pending,
    /// By the NIC, at this record.
    Nic(flow_offload::Handle),
    /// The NIC's table was full: by the host for the rest of its life.
    Refused,
}

/// The four endpoints of a FullNAT connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// The client.
    pub client: SocketAddr,
    /// The virtual service.
    pub vip: SocketAddr,
    /// The local address and port the appliance uses toward the server.
    pub lip: SocketAddr,
    /// The real server.
    pub rs: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcpState::*;

    #[test]
    fn a_clean_handshake_and_close_by_the_client() {
        let mut s = SynRecv;
        s = s.next(Dir::Reply, SYN | ACK);
        assert_eq!(s, SynRecv);
        s = s.next(Dir::Orig, ACK);
        assert_eq!(s, Established);
        s = s.next(Dir::Orig, ACK | 0x08);
        assert_eq!(s, Established);
        s = s.next(Dir::Orig, FIN | ACK);
        assert_eq!(s, FinWait);
        s = s.next(Dir::Reply, ACK);
        assert_eq!(s, FinWait);
        s = s.next(Dir::Reply, FIN | ACK);
        assert_eq!(s, TimeWait);
    }

    #[test]
    fn close_by_the_server_and_resets() {
        let s = Established.next(Dir::Reply, FIN | ACK);
        assert_eq!(s, CloseWait);
        let s = s.next(Dir::Orig, FIN | ACK);
        assert_eq!(s, LastAck);
        assert_eq!(s.next(Dir::Reply, ACK), TimeWait);
        for st in [SynRecv, Established, FinWait, CloseWait, LastAck, TimeWait] {
            assert_eq!(st.next(Dir::Orig, RST), Close);
            assert_eq!(st.next(Dir::Reply, RST | ACK), Close);
        }
        assert_eq!(TimeWait.next(Dir::Orig, SYN), SynRecv, "a new SYN on the tuple starts over");
    }

    #[test]
    fn host_state_round_trips() {
        for s in [
            State::Tcp(SynRecv),
            State::Tcp(Established),
            State::Tcp(FinWait),
            State::Tcp(CloseWait),
            State::Tcp(LastAck),
            State::Tcp(TimeWait),
            State::Tcp(Close),
            State::Udp { replied: false },
            State::Udp { replied: true },
        ] {
            assert_eq!(State::from_host_state(s.to_host_state()), Some(s));
        }
        assert_eq!(State::from_host_state(0), None);
        assert_eq!(State::from_host_state(99), None);
    }

    #[test]
    fn the_default_policy_offloads_after_the_handshake_and_udp_after_the_reply() {
        let p = OffloadPolicy::default();
        let z = Duration::ZERO;
        assert!(!p.qualifies(State::Tcp(SynRecv), z, 1));
        assert!(p.qualifies(State::Tcp(Established), z, 3));
        assert!(!p.qualifies(State::Tcp(FinWait), z, 3));
        assert!(!p.qualifies(State::Udp { replied: false }, z, 1));
        assert!(p.qualifies(State::Udp { replied: true }, z, 2));
        let held = OffloadPolicy { min_packets: 10, min_age: Duration::from_secs(1), ..p };
        assert!(!held.qualifies(State::Tcp(Established), Duration::from_secs(2), 9));
        assert!(!held.qualifies(State::Tcp(Established), Duration::from_millis(10), 10));
        assert!(held.qualifies(State::Tcp(Established), Duration::from_secs(2), 10));
        assert!(!OffloadPolicy { enabled: false, ..p }.qualifies(State::Tcp(Established), z, 3));
    }

    #[test]
    fn timeouts_default_to_dpvs() {
        let t = Timeouts::default();
        assert_eq!(t.of(State::Tcp(Established)).as_secs(), 90);
        assert_eq!(t.of(State::Tcp(SynRecv)).as_secs(), 30);
        assert_eq!(t.of(State::Tcp(TimeWait)).as_secs(), 7);
        assert_eq!(t.of(State::Udp { replied: true }).as_secs(), 300);
    }
}
