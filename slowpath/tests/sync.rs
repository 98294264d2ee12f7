//! Connection sync between two engines (two nodes of a cluster, each on its own in-process
//! NIC): node A's events, carried through the wire format, make standby copies on node B; the
//! first packet of a copy, from either side, makes it an active connection on B that forwards
//! with A's LIP and port (so client and server see the same connection) and is offloaded; B
//! takes A's LIP over only then; copies no packet reaches age out, and "ended" removes them.

use slowpath::sched::SchedulerKind;
use slowpath::service::ServiceConfig;
use slowpath::sync::{SyncEvent, SyncKind, SyncQueue, SyncStats, wire};
use sluice_test_support::engine::*;
use sluice_test_support::frame::Seg;
use sluice_test_support::verify::endpoints;
use std::sync::Arc;
use std::sync::atomic::Ordering;

struct Node {
    rig: Rig,
    events: crossbeam_channel::Receiver<SyncEvent>,
    stats: Arc<SyncStats>,
}

/// A node whose LIP is `lip`, syncing with a peer whose LIP is `peer_lip`.
fn node(lip: &str, peer_lip: &str) -> Node {
    node_of(1, lip, peer_lip)
}

/// [`node`] with `workers` workers.
fn node_of(workers: u16, lip: &str, peer_lip: &str) -> Node {
    node_with_queue(workers, lip, peer_lip, 1024)
}

/// [`node_of`] with a sync queue of `bound` events.
fn node_with_queue(workers: u16, lip: &str, peer_lip: &str, bound: usize) -> Node {
    let services: Vec<ServiceConfig> = services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)])
        .into_iter()
        .map(|s| ServiceConfig { local_addresses: vec![ip(lip)], ..s })
        .collect();
    let mut rig = rig_with(config(workers, services), 1024);
    let stats = Arc::new(SyncStats::default());
    let (q, events) = SyncQueue::bounded(bound, stats.clone());
    rig.engine.set_sync(q, vec![ip(peer_lip)]).unwrap();
    Node { rig, events, stats }
}

/// What node `from` queued, through the wire format, into node `to`.
fn carry(from: &Node, to: &mut Node) -> Vec<SyncEvent> {
    let events: Vec<SyncEvent> = from.events.try_iter().collect();
    let mut got = Vec::new();
    for chunk in events.chunks(wire::MAX_RECORDS) {
        let mut d = Vec::new();
        wire::encode(1, 0, chunk, &mut d);
        got.extend(wire::decode(&d).unwrap().events);
    }
    let now = to.rig.now();
    to.rig.engine.sync_receive(got.clone(), now);
    got
}

const CLIENT: &str = "10.10.1.10:40000";
const VIP: &str = "10.10.1.100:80";
const RS: &str = "10.10.2.11:80";

/// A connection through node `a` up to ESTABLISHED; returns its LIP and port.
fn establish(a: &mut Node) -> std::net::SocketAddr {
    let syn = Seg::new(CLIENT, VIP).syn().seq(100);
    let (_, to_server) = a.rig.client_sends(syn.frame(CLIENT_MAC, P0_MAC));
    let (lip, _) = endpoints(&to_server[0]);
    let synack = Seg::new(RS, &lip.to_string()).syn().ack(101).seq(7000);
    a.rig.server_sends(synack.frame(RS1_MAC, P1_MAC));
    let ack = Seg::new(CLIENT, VIP).ack(7001).seq(101);
    a.rig.client_sends(ack.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(a.rig.engine.conns(false)[0].state, "ESTABLISHED");
    lip
}

fn is_arp_announcing(frame: &[u8], lip: [u8; 4]) -> bool {
    frame.len() >= 42
        && frame[..6] == [0xff; 6]
        && frame[12..14] == [8, 6]
        && frame[28..32] == lip
        && frame[38..42] == lip
}

#[test]
fn a_standby_copy_becomes_active_on_the_clients_next_packet_and_is_offloaded() {
    let mut a = node("10.10.2.1", "10.10.2.2");
    let mut b = node("10.10.2.2", "10.10.2.1");
    let lip = establish(&mut a);
    let sent = carry(&a, &mut b);
    let kinds: Vec<_> = sent.iter().map(|e| (e.kind, e.state.name())).collect();
    assert_eq!(kinds, [(SyncKind::Created, "SYN_RECV"), (SyncKind::Changed, "ESTABLISHED")]);
    assert_eq!(sent[1].ep.lip, lip);
    assert_eq!(b.rig.engine.standby_count(), 1);
    assert!(b.rig.engine.conns(false).is_empty(), "a copy is not an active connection");

    // A dies; the router sends the client's next segment to B, which forwards it exactly as A
    // did: from A's LIP and port, to the same server.
    assert!(b.rig.p1.take_tx().is_empty(), "B announced nothing before");
    let req = Seg::new(CLIENT, VIP).ack(7001).seq(101).data(b"more of the download, please");
    let (_, to_server) = b.rig.client_sends(req.frame(CLIENT_MAC, P0_MAC));
    let forwarded: Vec<_> = to_server.iter().filter(|f| f[12..14] == [8, 0]).collect();
    assert_eq!(
        forwarded,
        vec![&req.rewritten(lip, sa(RS)).frame(P1_MAC, RS1_MAC)],
        "A's tuple, byte for byte"
    );
    assert!(
        to_server.iter().any(|f| is_arp_announcing(f, [10, 10, 2, 1])),
        "B announces A's LIP on the servers' side when it takes a connection of it over"
    );
    assert_eq!(b.rig.engine.taken_over(), [ip("10.10.2.1")]);
    // The announcement is made twice more, past Linux's 1 s ARP locktime, then no more.
    let mut repeats = 0;
    for _ in 0..6 {
        b.rig.advance(700_000_000);
        repeats += b.rig.p1.take_tx().iter().filter(|f| is_arp_announcing(f, [10, 10, 2, 1])).count();
        // (and on the clients' side, as every announcement)
        assert!(b.rig.p0.take_tx().iter().all(|f| is_arp_announcing(f, [10, 10, 2, 1])));
    }
    assert_eq!(repeats, 2, "two repeated announcements of the taken-over LIP");
    assert_eq!(b.rig.engine.standby_count(), 0);
    assert_eq!(b.stats.activated.load(Ordering::Relaxed), 1);
    let conns = b.rig.engine.conns(false);
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, "ESTABLISHED");
    assert_eq!(conns[0].location.as_str(), "nic", "offloaded like any other connection");
    assert_eq!(b.rig.occupancy(), 1);

    // The server's answer to A's LIP now hits B's NIC and reaches the client from the VIP.
    let resp = Seg::new(RS, &lip.to_string()).ack(129).seq(7001).data(&[b'x'; 1000]);
    let (to_client, _) = b.rig.server_sends(resp.frame(RS1_MAC, P1_MAC));
    assert_eq!(to_client, vec![resp.rewritten(sa(VIP), sa(CLIENT)).frame(P0_MAC, CLIENT_MAC)]);
    // B reports the connection it now holds (to its peers, A among them when it returns).
    assert!(b.events.try_iter().any(|e| e.kind == SyncKind::Created && e.ep.lip == lip));
}

#[test]
fn the_servers_packet_can_be_the_first_and_arp_for_the_peers_lip_is_answered_only_after() {
    let mut a = node("10.10.2.1", "10.10.2.2");
    let mut b = node("10.10.2.2", "10.10.2.1");
    let lip = establish(&mut a);
    carry(&a, &mut b);
    let who_has = |r: &mut Rig| {
        let req = sluice_test_support::frame::l2([0xff; 6], RS1_MAC, None, etherparse::EtherType::ARP);
        let mut f = req;
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&RS1_MAC);
        f.extend_from_slice(&[10, 10, 2, 11, 0, 0, 0, 0, 0, 0, 10, 10, 2, 1]);
        let (_, to_server) = r.server_sends(f);
        to_server.iter().any(|f| f[12..14] == [8, 6] && f[20..22] == [0, 2])
    };
    assert!(!who_has(&mut b.rig), "A's LIP is A's while A lives");
    let resp = Seg::new(RS, &lip.to_string()).ack(101).seq(7001).data(&[b'y'; 100]);
    let (to_client, _) = b.rig.server_sends(resp.frame(RS1_MAC, P1_MAC));
    // (The announcement of A's LIP goes out of every port, the client's side too.)
    let to_client: Vec<_> = to_client.into_iter().filter(|f| f[12..14] == [8, 0]).collect();
    assert_eq!(to_client, vec![resp.rewritten(sa(VIP), sa(CLIENT)).frame(P0_MAC, CLIENT_MAC)]);
    assert_eq!(b.rig.engine.conns(false).len(), 1);
    assert!(who_has(&mut b.rig), "taken over: B answers for A's LIP");
}

/// The router moved a flow of a live peer here (the peer came back into ECMP, or its BGP
/// session flapped): the copy forwards it, but the peer's LIP stays the peer's, so the servers'
/// replies to its other connections keep going to it. Only when the daemon says the peer went
/// quiet is the LIP taken over.
#[test]
fn a_live_peers_connection_is_forwarded_here_without_taking_its_lip() {
    let mut a = node("10.10.2.1", "10.10.2.2");
    let mut b = node("10.10.2.2", "10.10.2.1");
    let lip = establish(&mut a);
    carry(&a, &mut b);
    b.rig.engine.set_live_peer_lips(vec![ip("10.10.2.1")]);
    let req = Seg::new(CLIENT, VIP).ack(7001).seq(101).data(b"a rehashed segment");
    let (_, to_server) = b.rig.client_sends(req.frame(CLIENT_MAC, P0_MAC));
    let forwarded: Vec<_> = to_server.iter().filter(|f| f[12..14] == [8, 0]).collect();
    assert_eq!(forwarded, vec![&req.rewritten(lip, sa(RS)).frame(P1_MAC, RS1_MAC)], "A's tuple");
    assert!(!to_server.iter().any(|f| is_arp_announcing(f, [10, 10, 2, 1])), "A's LIP not announced");
    assert!(b.rig.engine.taken_over().is_empty());
    assert_eq!(b.rig.engine.deferred_takeovers(), [ip("10.10.2.1")]);
    assert_eq!(b.rig.engine.conns(false).len(), 1, "the copy is active here");
    // Still alive: nothing changes.
    b.rig.engine.set_live_peer_lips(vec![ip("10.10.2.1")]);
    assert!(b.rig.engine.taken_over().is_empty());
    // A went quiet: its LIP is taken over and announced.
    b.rig.engine.set_live_peer_lips(vec![]);
    assert_eq!(b.rig.engine.taken_over(), [ip("10.10.2.1")]);
    assert!(b.rig.engine.deferred_takeovers().is_empty());
    b.rig.advance(1_000);
    assert!(b.rig.p1.take_tx().iter().any(|f| is_arp_announcing(f, [10, 10, 2, 1])), "announced");
}

/// A node that (re)starts announces its own LIPs, now and twice more past Linux's ARP locktime:
/// a peer that took them over while it was down pointed the servers' caches at itself.
#[test]
fn a_node_announces_its_own_lips_when_it_starts() {
    let mut a = node("10.10.2.1", "10.10.2.2");
    a.rig.p1.take_tx();
    a.rig.engine.announce_own_lips();
    let mut seen = 0;
    for _ in 0..6 {
        a.rig.advance(700_000_000);
        seen += a.rig.p1.take_tx().iter().filter(|f| is_arp_announcing(f, [10, 10, 2, 1])).count();
    }
    assert_eq!(seen, 3, "announced, then twice more");
}

#[test]
fn copies_age_out_with_their_timeout_and_ended_removes_them() {
    let mut a = node("10.10.2.1", "10.10.2.2");
    let mut b = node("10.10.2.2", "10.10.2.1");
    establish(&mut a);
    carry(&a, &mut b);
    assert_eq!(b.rig.engine.standby_count(), 1);
    // ESTABLISHED's 90 s and the grace: still there just before, gone after.
    b.rig.advance(95 * S);
    assert_eq!(b.rig.engine.standby_count(), 1);
    b.rig.advance(6 * S);
    assert_eq!(b.rig.engine.standby_count(), 0);
    assert_eq!(b.stats.standby_expired.load(Ordering::Relaxed), 1);
    // A packet after that is no connection of B's.
    let req = Seg::new(CLIENT, VIP).ack(7001).seq(101);
    let (_, to_server) = b.rig.client_sends(req.frame(CLIENT_MAC, P0_MAC));
    assert!(to_server.is_empty());

    // Again, and this time A closes the connection (a reset): B drops its copy.
    let mut a = node("10.10.2.1", "10.10.2.2");
    let mut b = node("10.10.2.2", "10.10.2.1");
    establish(&mut a);
    carry(&a, &mut b);
    let rst = Seg::new(CLIENT, VIP).rst().seq(101);
    a.rig.client_sends(rst.frame(CLIENT_MAC, P0_MAC));
    a.rig.advance(4 * S);
    assert!(a.rig.engine.conns(false).is_empty());
    let sent = carry(&a, &mut b);
    assert_eq!(sent.last().map(|e| e.kind), Some(SyncKind::Ended));
    assert_eq!(b.rig.engine.standby_count(), 0);
}

#[test]
fn a_live_offloaded_connection_refreshes_its_copies() {
    let mut a = node("10.10.2.1", "10.10.2.2");
    let mut b = node("10.10.2.2", "10.10.2.1");
    let lip = establish(&mut a);
    carry(&a, &mut b);
    // Traffic keeps flowing through A's NIC (the host does not see it); A's timer finds the
    // flow alive at 90 s and refreshes B's copy, which would otherwise expire at 100 s.
    for _ in 0..12 {
        a.rig.advance(10 * S);
        let req = Seg::new(CLIENT, VIP).ack(7001).seq(101).data(b"x");
        a.rig.client_sends(req.frame(CLIENT_MAC, P0_MAC));
        carry(&a, &mut b);
        b.rig.advance(10 * S);
    }
    assert_eq!(b.rig.engine.standby_count(), 1, "refreshed, not expired (120 s later)");
    assert_eq!(b.rig.engine.workers()[0].standby().next().map(|e| e.ep.lip), Some(lip));
}

#[test]
fn with_several_workers_a_copy_lands_in_the_worker_both_directions_reach() {
    // Same worker count on both nodes: each copy goes to the worker that owns its LIP port,
    // which is the worker the NIC steers its client tuple to; every one activates.
    let mut a = node_of(4, "10.10.2.1", "10.10.2.2");
    let mut b = node_of(4, "10.10.2.2", "10.10.2.1");
    let clients: Vec<String> = (0..16).map(|i| format!("10.10.1.10:{}", 40000 + i)).collect();
    for c in &clients {
        let syn = Seg::new(c, VIP).syn().seq(100);
        let (_, to_server) = a.rig.client_sends(syn.frame(CLIENT_MAC, P0_MAC));
        let (lip, _) = endpoints(&to_server[0]);
        let synack = Seg::new(RS, &lip.to_string()).syn().ack(101).seq(7000);
        a.rig.server_sends(synack.frame(RS1_MAC, P1_MAC));
        let ack = Seg::new(c, VIP).ack(7001).seq(101);
        a.rig.client_sends(ack.frame(CLIENT_MAC, P0_MAC));
    }
    carry(&a, &mut b);
    assert_eq!(b.rig.engine.standby_count(), 16);
    let used: std::collections::BTreeSet<usize> = b
        .rig
        .engine
        .workers()
        .iter()
        .enumerate()
        .filter(|(_, w)| w.standby_count() > 0)
        .map(|(i, _)| i)
        .collect();
    assert!(used.len() > 1, "the copies spread over the workers: {used:?}");
    for c in &clients {
        let req = Seg::new(c, VIP).ack(7001).seq(101).data(b"x");
        b.rig.client_sends(req.frame(CLIENT_MAC, P0_MAC));
    }
    assert_eq!(b.stats.activated.load(Ordering::Relaxed), 16, "every copy was where its packet went");
    assert_eq!(b.rig.engine.conns(false).len(), 16);

    // Different worker counts: a copy whose two directions would reach different workers is
    // ignored and counted, never filed where no packet finds it.
    let mut four = node_of(4, "10.10.2.2", "10.10.2.1");
    let mut one = node_of(1, "10.10.2.1", "10.10.2.2");
    for c in &clients {
        let syn = Seg::new(c, VIP).syn().seq(100);
        one.rig.client_sends(syn.frame(CLIENT_MAC, P0_MAC));
    }
    let sent = carry(&one, &mut four).len() as u64;
    let ignored = four.stats.ignored.load(Ordering::Relaxed);
    assert_eq!(sent, 16);
    assert!(ignored > 0, "some of 16 tuples steer elsewhere than their port's worker");
    assert_eq!(four.rig.engine.standby_count() as u64 + ignored, sent);
}

#[test]
fn a_peer_that_comes_up_gets_every_connection_again_paced_by_the_queue() {
    // Node A's queue holds 32 events: a resync of 40 connections takes several rounds.
    let mut a = node_with_queue(1, "10.10.2.1", "10.10.2.2", 32);
    let mut b = node("10.10.2.2", "10.10.2.1");
    let mut lips = Vec::new();
    for n in 0..40u16 {
        let client = format!("10.10.1.10:{}", 41000 + n);
        let syn = Seg::new(&client, VIP).syn().seq(100);
        let (_, to_server) = a.rig.client_sends(syn.frame(CLIENT_MAC, P0_MAC));
        let (lip, _) = endpoints(&to_server[0]);
        let synack = Seg::new(RS, &lip.to_string()).syn().ack(101).seq(7000);
        a.rig.server_sends(synack.frame(RS1_MAC, P1_MAC));
        a.rig.client_sends(Seg::new(&client, VIP).ack(7001).seq(101).frame(CLIENT_MAC, P0_MAC));
        lips.push((client, lip));
        // B is down: what A reported meanwhile is lost.
        let _ = a.events.try_iter().count();
    }
    assert_eq!(b.rig.engine.standby_count(), 0);
    // B comes up: A reports its 40 connections again, 16 a round (half the queue's room).
    a.rig.engine.request_sync_dump();
    let mut rounds = 0;
    loop {
        let now = a.rig.now();
        let n = a.rig.engine.continue_sync_dump(now);
        if n == 0 {
            break;
        }
        assert!(n <= 16, "a round of {n}: more than half the queue");
        let carried = carry(&a, &mut b);
        assert!(carried.iter().all(|e| e.kind == SyncKind::Changed && e.state.name() == "ESTABLISHED"));
        rounds += 1;
    }
    assert_eq!(rounds, 3, "40 connections in rounds of 16");
    assert_eq!(b.stats.dropped.load(Ordering::Relaxed), 0);
    assert_eq!(a.stats.resyncs.load(Ordering::Relaxed), 1);
    assert_eq!(b.rig.engine.standby_count(), 40, "B holds a copy of every connection");
    // A client's packet reaching B now continues its connection there, with A's LIP and port.
    let (client, lip) = &lips[17];
    let data = Seg::new(client, VIP).ack(7001).seq(101).data(b"GET / HTTP/1.1\r\n\r\n");
    let (_, to_server) = b.rig.client_sends(data.frame(CLIENT_MAC, P0_MAC));
    let forwarded: Vec<_> = to_server.iter().filter(|f| f[12..14] == [8, 0]).collect();
    assert_eq!(
        forwarded,
        vec![&data.rewritten(*lip, sa(RS)).frame(P1_MAC, RS1_MAC)],
        "A's tuple, byte for byte"
    );
    assert_eq!(b.stats.activated.load(Ordering::Relaxed), 1);
}
