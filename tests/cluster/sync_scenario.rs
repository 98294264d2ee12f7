//! The done-when of connection sync: `kill -9` of node 1 in the middle of 20 long downloads and
//! 200 keep-alive connections. New connections reach node 2 (the time it takes is measured and
//! printed, BFD 100 ms × 3), every download completes byte-identical (SHA-256) through node 2,
//! every keep-alive connection still gets answers, and the router's route to node 1's LIP
//! moves to node 2's backup announcement.

use super::*;
use sha2::Digest;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const DOWNLOADS: usize = 20;
const BYTES: usize = 24_000_000;
const KEEPALIVE: usize = 200;

fn sha(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().fold(String::new(), |mut s, b| {
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
        s
    })
}

/// One request on a keep-alive connection and its whole answer.
fn ask_keepalive(s: &mut TcpStream) -> Result<(), String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err("closed".into()),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
    if body.starts_with(b"rs") { Ok(()) } else { Err("not a server's answer".into()) }
}

/// What the keep-alive client saw: per connection, its failures (none expected) and the
/// requests answered; the last round's answers.
#[derive(Default)]
struct KeepAlive {
    failures: Vec<(usize, String)>,
    answered: u64,
    last_round_ok: usize,
    rounds: u64,
}

/// 200 keep-alive connections from the client's namespace, each asked again every round until
/// `stop`; one last round after it.
fn keepalive_client(
    ns: String,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<KeepAlive>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
        // SAFETY: setns on a namespace file we opened; it changes this thread only.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let vip: SocketAddr = VIP.parse().unwrap();
        let mut conns: Vec<Option<TcpStream>> = (0..KEEPALIVE)
            .map(|_| {
                // Three tries: on this shared machine a node's BFD session can flap while the
                // cluster settles, and a SYN hashed to it is lost until the route moves.
                let s = (0..3)
                    .find_map(|_| TcpStream::connect_timeout(&vip, Duration::from_secs(3)).ok())
                    .expect("keep-alive connect (three tries)");
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                Some(s)
            })
            .collect();
        loop {
            let last = stop.load(Ordering::Relaxed);
            let mut ok = 0;
            for (i, c) in conns.iter_mut().enumerate() {
                let Some(s) = c else { continue };
                match ask_keepalive(s) {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        out.lock().unwrap().failures.push((i, e));
                        *c = None;
                    }
                }
            }
            {
                let mut o = out.lock().unwrap();
                o.answered += ok as u64;
                o.rounds += 1;
                o.last_round_ok = ok;
            }
            if last {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

fn start_download(c: &Cluster) -> (Child, std::thread::JoinHandle<Vec<u8>>) {
    let url = format!("http://{VIP}/bytes/{BYTES}");
    let mut curl = Command::new("ip")
        .args(["netns", "exec", &c.client, "curl", "-sS", "--max-time", "150", "--limit-rate", "2M", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = curl.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = body.read_to_end(&mut v);
        v
    });
    (curl, reader)
}

#[test]
#[ignore = "needs root: network namespaces, veths and BIRD (bird2); scripts/test-all runs it"]
fn kill_9_of_a_node_keeps_every_download_and_keepalive_connection_through_its_peer() {
    let _alone = super::one_cluster_at_a_time();
    let c = Cluster::build("slcs");
    c.wait_hops("10.99.0.100", 2, Duration::from_secs(30));
    for n in 0..2 {
        assert!(established(&c, n), "node {n}: {}", c.ask(n, "cluster"));
    }
    // Each node's LIP is its own route; the peer's backup announcement waits behind it.
    c.wait_hops("10.10.2.1", 1, Duration::from_secs(10));
    assert_eq!(c.next_hops("10.10.2.1"), vec!["10.10.3.1".to_string()]);
    // The nodes hear each other's heartbeats.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(0..2).all(|n| c.ask(n, "cluster")["sync"]["peers"][0]["last_seen_s"].is_number()) {
        assert!(Instant::now() < deadline, "sync peers: {} / {}", c.ask(0, "cluster"), c.ask(1, "cluster"));
        std::thread::sleep(Duration::from_millis(100));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let ka = Arc::new(Mutex::new(KeepAlive::default()));
    let ka_thread = keepalive_client(c.client.clone(), stop.clone(), ka.clone());
    let downloads: Vec<_> = (0..DOWNLOADS).map(|_| start_download(&c)).collect();
    // Let every download and keep-alive connection open and sync (rounds go on meanwhile).
    let deadline = Instant::now() + Duration::from_secs(20);
    while ka.lock().unwrap().rounds < 3 {
        assert!(Instant::now() < deadline, "the keep-alive client made no rounds");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    // Both nodes carry the VIP again (after any flap while the load started).
    c.wait_hops("10.99.0.100", 2, Duration::from_secs(10));
    let on_node1 = c.ask(0, "flows")["flows"]
        .as_array()
        .map_or(0, |f| f.iter().filter(|f| f["vip"] == VIP && f["state"] == "ESTABLISHED").count());
    let standby_on_node2 = c.ask(1, "cluster")["sync"]["standby"].as_u64().unwrap_or(0);
    eprintln!(
        "before the kill: node 1 holds {on_node1} established connections, node 2 holds {standby_on_node2} \
         standby copies (of node 1's connections)"
    );
    assert!(on_node1 > 0, "ECMP put connections on node 1");
    assert!(
        standby_on_node2 as usize >= on_node1,
        "node 2 holds a copy of each of node 1's connections: node 1's sync {}, node 2's {}",
        c.ask(0, "cluster")["sync"],
        c.ask(1, "cluster")["sync"]
    );

    // kill -9 of node 1; new connections are tried every 5 ms (100 ms to connect each).
    let kill_at = Instant::now();
    assert!(Command::new("kill").args(["-9", &c.pids[0].to_string()]).status().unwrap().success());
    let attempts = in_ns(&c.client, || {
        let mut v = Vec::new();
        while kill_at.elapsed() < Duration::from_secs(3) {
            let at = kill_at.elapsed();
            v.push((at, get(Duration::from_millis(100))));
            std::thread::sleep(Duration::from_millis(5));
        }
        v
    });
    let last_fail = attempts.iter().filter(|(_, r)| r.is_err()).map(|(at, _)| *at).max();
    let failover = last_fail.map_or(Duration::ZERO, |t| t + Duration::from_millis(5));
    eprintln!(
        "kill -9 of node 1: new connections reach node 2 from {failover:?} after the kill on ({} tried in 3 s, {} \
         failed; BFD 100 ms x 3)",
        attempts.len(),
        attempts.iter().filter(|(_, r)| r.is_err()).count()
    );
    assert!(
        attempts.iter().any(|(at, r)| *at > failover && r.is_ok()),
        "new connections work after the kill"
    );

    // Every download completes, byte-identical, through node 2.
    let want = sha(&(0..BYTES).map(sluice::internal::pattern).collect::<Vec<u8>>());
    let mut broken = Vec::new();
    for (i, (curl, reader)) in downloads.into_iter().enumerate() {
        let out = curl.wait_with_output().unwrap();
        let body = reader.join().unwrap();
        if !out.status.success() || body.len() != BYTES || sha(&body) != want {
            broken.push(format!(
                "download {i}: {} bytes, {}",
                body.len(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let done_at = kill_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    ka_thread.join().unwrap();
    let ka = ka.lock().unwrap();
    let node2 = c.ask(1, "cluster");
    eprintln!(
        "after the kill: {} of {DOWNLOADS} downloads of {BYTES} bytes byte-identical ({done_at:?} after the kill); \
         keep-alive: {} rounds, {} answers, {} of {KEEPALIVE} answered in the last round, failures {:?}; node 2's \
         sync: {}",
        DOWNLOADS - broken.len(),
        ka.rounds,
        ka.answered,
        ka.last_round_ok,
        ka.failures,
        node2["sync"]
    );
    assert!(broken.is_empty(), "{broken:?}");
    assert!(ka.failures.is_empty(), "keep-alive connections broke: {:?}", ka.failures);
    assert_eq!(ka.last_round_ok, KEEPALIVE, "every keep-alive connection answers after the kill");
    assert!(node2["sync"]["activated"].as_u64().unwrap_or(0) > 0, "node 2 took node 1's connections over");
    assert_eq!(node2["sync"]["taken_over"], serde_json::json!(["10.10.2.1"]));
    // Node 1's LIP is routed to node 2 now (its backup announcement).
    assert_eq!(c.next_hops("10.10.2.1"), vec!["10.10.4.1".to_string()]);
}
