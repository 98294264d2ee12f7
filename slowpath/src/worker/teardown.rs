//! A connection's state moving without its packet: what a state change updates (the server's
//! active and inactive counts, the half-open counts, the close timer, the standby's copy), and
//! the FINs the NIC forwards itself (`offload.forward_fin`), which the slow path learns of from
//! the flow's event rather than from a punted packet.

use super::limits::HalfOpenBySource;
use super::path::count_state;
use super::{Worker, WorkerStats};
use crate::conn::{Dir, State, TcpState};
use crate::service::BackendStats;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

pub(super) const FIN: u8 = 0x01;

/// Counts a connection's move from `before` to `after` (no change counts nothing): the
/// server's active and inactive connections, and the worker's and the client's half-open ones.
pub(super) fn account(
    stats: &WorkerStats,
    backend: &BackendStats,
    half_open_src: &mut HalfOpenBySource,
    (before, after): (State, State),
    client: IpAddr,
) {
    if before == after {
        return;
    }
    count_state(backend, before, -1);
    count_state(backend, after, 1);
    let was_half = before == State::Tcp(TcpState::SynRecv);
    let is_half = after == State::Tcp(TcpState::SynRecv);
    if was_half && !is_half {
        stats.half_open.fetch_sub(1, Ordering::Relaxed);
        half_open_src.leave(client);
    } else if is_half && !was_half {
        stats.half_open.fetch_add(1, Ordering::Relaxed);
        half_open_src.enter(client);
    }
}

/// The state after FINs in the directions `fin` says (original, reply), as the packets would
/// have moved it: one-way connections (DR, TUN) see only the client's.
fn after_fins(s: TcpState, fin: [bool; 2], one_way: bool) -> TcpState {
    match (one_way, fin) {
        (true, [true, _]) => s.next_one_way(FIN),
        (true, _) => s,
        (false, [o, r]) => {
            // The client's first: from ESTABLISHED both make TIME_WAIT; from CLOSE_WAIT (the
            // server closed first) the client's makes LAST_ACK, which the server's FIN does not
            // move (the last ACK, which would, the NIC forwards without a word).
            let s = if o { s.next(Dir::Orig, FIN) } else { s };
            if r { s.next(Dir::Reply, FIN) } else { s }
        }
    }
}

impl Worker {
    /// The NIC saw a FIN on connection `slot`'s flow (`flags`: the TCP flags it has seen in
    /// each direction since the flow's counters were last read). The state moves as the FINs
    /// would have moved it, and the close timer is re-armed, as for a punted FIN. Moving twice
    /// for one FIN (a FIN punted by a device that does not forward them also raises the event)
    /// changes nothing: a closing state does not move again on the same FIN.
    pub(super) fn fin_seen_by_nic(&mut self, slot: u32, flags: [u8; 2], now_ns: u64) {
        let timeouts = self.cfg.timeouts;
        let stats = &*self.stats;
        let Some((c, route)) = self.conns.with_route(slot) else { return };
        let State::Tcp(s) = c.state else { return };
        let fin = [flags[0] & FIN != 0, flags[1] & FIN != 0];
        let before = c.state;
        c.state = State::Tcp(after_fins(s, fin, route.forward.one_way()));
        account(
            stats,
            &route.backend_stats,
            &mut self.half_open_src,
            (before, c.state),
            c.ep(route).client.ip(),
        );
        let changed = c.state != before;
        let deadline = now_ns + timeouts.of(c.state).as_nanos() as u64;
        if self.conns.fires_later_than(slot, deadline) {
            self.conns.arm(slot, deadline);
        }
        self.sync_changed(changed, slot, now_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcpState::{CloseWait, Established, FinWait, LastAck, SynRecv, TimeWait};

    #[test]
    fn fins_seen_by_the_nic_move_the_state_as_the_packets_would() {
        assert_eq!(after_fins(Established, [true, false], false), FinWait);
        assert_eq!(after_fins(Established, [false, true], false), CloseWait);
        assert_eq!(after_fins(Established, [true, true], false), TimeWait);
        assert_eq!(after_fins(FinWait, [true, true], false), TimeWait);
        assert_eq!(after_fins(CloseWait, [true, true], false), LastAck);
        assert_eq!(after_fins(SynRecv, [true, false], false), FinWait);
        // Seen again (a retransmitted FIN, or the punt of the same FIN): no further move.
        assert_eq!(after_fins(FinWait, [true, false], false), FinWait);
        assert_eq!(after_fins(TimeWait, [true, true], false), TimeWait);
        assert_eq!(after_fins(LastAck, [true, true], false), LastAck);
        // One way: the client's FIN alone counts.
        assert_eq!(after_fins(Established, [false, true], true), Established);
        assert_eq!(after_fins(Established, [true, false], true), Established.next_one_way(FIN));
    }
}
