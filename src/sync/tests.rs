//! The sender and the receiver over loopback: events arrive in order, batched; bad datagrams,
//! strangers and this node's own id are refused and counted; sequence gaps count as lost.

use super::*;
use slowpath::conn::{Endpoints, State, TcpState};
use slowpath::service::Proto;
use slowpath::sync::SyncKind;

fn event(n: u16) -> SyncEvent {
    SyncEvent {
        kind: SyncKind::Created,
        ep: Endpoints {
            client: format!("10.0.0.1:{n}").parse().unwrap(),
            vip: "10.99.0.1:80".parse().unwrap(),
            lip: format!("10.10.2.1:{}", 2048 + n).parse().unwrap(),
            rs: "10.10.2.11:80".parse().unwrap(),
        },
        proto: Proto::Tcp,
        state: State::Tcp(TcpState::Established),
        timeout_ms: 90_000,
        seq_delta: None,
        ts_delta: 0,
    }
}

struct Ends {
    queue: SyncQueue,
    stats: Arc<SyncStats>,
    peers: Arc<Mutex<Vec<Peer>>>,
    received: crossbeam_channel::Receiver<Vec<SyncEvent>>,
    resync: Arc<AtomicBool>,
    to_receiver: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A sender (node 1; none without `sender`) and a receiver (node 2) on loopback, the
/// receiver knowing 127.0.0.1 as its peer.
fn ends(bound: usize, sender: bool) -> Ends {
    let rx_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx_socket.set_read_timeout(Some(TICK)).unwrap();
    let to_receiver = rx_socket.local_addr().unwrap();
    let tx_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stats = Arc::new(SyncStats::default());
    let (queue, events) = SyncQueue::bounded(bound, stats.clone());
    let peers = Arc::new(Mutex::new(vec![Peer {
        address: "127.0.0.1".parse().unwrap(),
        lips: Vec::new(),
        node_id: None,
        last_seen: None,
        last_seq: None,
        datagrams: 0,
        records: 0,
        lost: 0,
    }]));
    let stop = Arc::new(AtomicBool::new(false));
    let (out, received) = crossbeam_channel::bounded(RECEIVED_BOUND);
    let (st, sp) = (stats.clone(), stop.clone());
    let mut threads = Vec::new();
    if sender {
        threads.push(std::thread::spawn(move || {
            send_loop(&tx_socket, &[to_receiver], 1, Duration::from_millis(5), &events, &st, &sp);
        }));
    }
    let resync = Arc::new(AtomicBool::new(false));
    let (st, sp, ps, rs) = (stats.clone(), stop.clone(), peers.clone(), resync.clone());
    threads.push(std::thread::spawn(move || recv_loop(&rx_socket, 2, &ps, (&out, &rs), &st, &sp)));
    Ends { queue, stats, peers, received, resync, to_receiver, stop, threads }
}

impl Ends {
    fn take(&self, n: usize) -> Vec<SyncEvent> {
        let mut got = Vec::new();
        while got.len() < n {
            match self.received.recv_timeout(Duration::from_secs(10)) {
                Ok(v) => got.extend(v),
                Err(_) => break,
            }
        }
        got
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[test]
fn events_cross_in_order_in_batches() {
    let e = ends(1024, true);
    let sent: Vec<SyncEvent> = (0..40).map(event).collect();
    for ev in &sent {
        e.queue.push(*ev);
    }
    assert_eq!(e.take(40), sent);
    assert_eq!(count(&e.stats.received_records), 40);
    let datagrams = count(&e.stats.received);
    assert!((3..40).contains(&datagrams), "batched: {datagrams} datagrams for 40 events");
    let p = e.peers.lock().unwrap();
    assert_eq!((p[0].node_id, p[0].records, p[0].lost), (Some(1), 40, 0));
    drop(p);
    e.finish();
}

#[test]
fn bad_datagrams_strangers_and_our_own_id_are_refused_and_counted() {
    let e = ends(16, false);
    let from_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut good = Vec::new();
    wire::encode(9, 0, &[event(1)], &mut good);
    let mut own = Vec::new();
    wire::encode(2, 0, &[event(2)], &mut own);
    from_peer.send_to(b"hello", e.to_receiver).unwrap();
    from_peer.send_to(&good[..good.len() - 1], e.to_receiver).unwrap();
    from_peer.send_to(&own, e.to_receiver).unwrap();
    stranger.send_to(&good, e.to_receiver).unwrap();
    // A good one after them, with a gap of four in its sequence.
    from_peer.send_to(&good, e.to_receiver).unwrap();
    let mut later = Vec::new();
    wire::encode(9, 5, &[event(3)], &mut later);
    from_peer.send_to(&later, e.to_receiver).unwrap();
    let got = e.take(2);
    assert_eq!(got, [event(1), event(3)]);
    assert_eq!(count(&e.stats.bad), 4);
    assert_eq!(count(&e.stats.lost), 4);
    e.finish();
}

#[test]
fn an_idle_sender_sends_heartbeats() {
    let e = ends(16, true);
    let start = Instant::now();
    while count(&e.stats.received) < 2 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(count(&e.stats.received) >= 2, "heartbeats arrive with nothing to sync");
    assert_eq!(count(&e.stats.received_records), 0);
    assert!(e.peers.lock().unwrap()[0].last_seen.is_some());
    e.finish();
}

#[test]
fn status_metrics_and_text_name_every_counter() {
    let st = SyncStatus {
        node_id: 7,
        port: 8848,
        queue_depth: 3,
        queue_bound: 65536,
        standby: 12,
        taken_over: vec!["10.10.2.2".into()],
        peers: vec![PeerStatus {
            address: "10.10.2.252".into(),
            lips: vec!["10.10.2.2".into()],
            node_id: Some(9),
            last_seen_s: Some(0.25),
            datagrams: 10,
            records: 40,
            lost: 1,
        }],
        ..SyncStatus::default()
    };
    let m = metrics(&st);
    for part in [
        "sluice_sync_sent_total 0",
        "sluice_sync_received_total 0",
        "sluice_sync_dropped_total 0",
        "sluice_sync_bad_total 0",
        "sluice_sync_queue_depth 3",
        "sluice_sync_standby_connections 12",
        "sluice_sync_lag_seconds{peer=\"10.10.2.252\"} 0.250",
    ] {
        assert!(m.contains(part), "{m}\n lacks {part:?}");
    }
    let text = format(&st);
    assert!(text.contains("queue 3/65536, 12 standby, 0 activated, taken over: 10.10.2.2"), "{text}");
    assert!(
        text.contains("10.10.2.252") && text.contains("0.2 s ago") && text.contains("10.10.2.2"),
        "{text}"
    );
}

#[test]
fn a_peer_that_comes_up_or_restarts_asks_for_a_resync_and_one_that_goes_on_does_not() {
    let e = ends(16, false);
    let from_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |node: u32, seq: u32| {
        let mut d = Vec::new();
        wire::encode(node, seq, &[event(seq as u16)], &mut d);
        from_peer.send_to(&d, e.to_receiver).unwrap();
        assert_eq!(e.take(1).len(), 1, "datagram {seq} arrived");
    };
    let resync = || e.resync.swap(false, Ordering::Relaxed);
    send(9, 0);
    assert!(resync(), "heard for the first time: it has no copies");
    for seq in 1..5 {
        send(9, seq);
        assert!(!resync(), "the same run of datagrams ({seq})");
    }
    send(9, 0);
    assert!(resync(), "its sequence went back: restarted");
    send(9, 1);
    assert!(!resync());
    send(11, 2);
    assert!(resync(), "another node at the peer's address");
    // Back after a silence of DEAD_AFTER (its last sighting moved back in time).
    {
        let mut p = e.peers.lock().unwrap();
        p[0].last_seen = Instant::now().checked_sub(DEAD_AFTER + Duration::from_millis(10));
    }
    send(11, 3);
    assert!(resync(), "back after a silence");
    e.finish();
}
